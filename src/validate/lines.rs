//! Byte offsets to lines and columns, and back.

/// Where each line of a source starts.
pub struct LineIndex<'a> {
    source: &'a str,
    starts: Vec<u32>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `source`.
    pub fn new(source: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i as u32 + 1));
        LineIndex { source, starts }
    }

    /// The 1-based line and 1-based column (in characters) of a byte offset.
    pub fn position(&self, offset: u32) -> (u32, u32) {
        let offset = (offset as usize).min(self.source.len());
        let line = self.starts.partition_point(|&s| s as usize <= offset).max(1);
        let start = self.starts[line - 1] as usize;
        let column = self.source.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line as u32, column as u32 + 1)
    }

    /// The byte offset of a 1-based line and column (clamped to the source).
    pub fn offset(&self, line: u32, column: u32) -> u32 {
        let Some(&start) = self.starts.get((line.max(1) - 1) as usize) else {
            return self.source.len() as u32;
        };
        let text = self.line_text(line);
        let within: usize = text.chars().take(column.saturating_sub(1) as usize).map(char::len_utf8).sum();
        start + within as u32
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line_text(&self, line: u32) -> &'a str {
        let Some(&start) = self.starts.get((line.max(1) - 1) as usize) else { return "" };
        let rest = &self.source[start as usize..];
        let end = rest.find('\n').unwrap_or(rest.len());
        rest[..end].trim_end_matches('\r')
    }

    /// Replaces a line's code in `text` (a copy of the indexed source) with `0` and
    /// spaces, keeping its indentation and its length in bytes so that offsets into the
    /// rest stay valid. `false` when the line has no code to replace.
    pub fn blank_line(&self, text: &mut String, line: u32) -> bool {
        let Some(&start) = self.starts.get((line.max(1) - 1) as usize) else { return false };
        let content = self.line_text(line);
        let indent = content.len() - content.trim_start().len();
        let (from, to) = (start as usize + indent, start as usize + content.len());
        if from >= to || text.len() != self.source.len() {
            return false;
        }
        let placeholder = format!("0{}", " ".repeat(to - from - 1));
        text.replace_range(from..to, &placeholder);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn positions_round_trip() {
        let source = "a = 1\nb = 'é'\r\n  c\n";
        let index = LineIndex::new(source);
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(6), (2, 1));
        assert_eq!(index.position(source.find('\r').unwrap() as u32), (2, 8));
        assert_eq!(index.offset(3, 3), source.find('c').unwrap() as u32);
        assert_eq!(index.line_text(2), "b = 'é'");
        let mut copy = source.to_string();
        assert!(index.blank_line(&mut copy, 3));
        assert_eq!(copy, "a = 1\nb = 'é'\r\n  0\n");
    }
}
