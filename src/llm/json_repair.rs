//! Reading JSON objects and Python scripts out of the free-text answers of language models.
//!
//! Small local models often ignore JSON mode: they wrap the object in prose or Markdown
//! fences, think aloud first, write Python literals, single quotes or comments, or stop
//! mid-object when they run out of tokens. [`extract_json`] finds the first object and mends
//! those slips with a small tokenizer that always knows whether it is inside a string, so
//! string contents are never rewritten. [`extract_code`] picks the script out of an answer
//! that mixes code and explanation.

use std::ops::Range;

use serde_json::Value;

/// Why no JSON value could be read from a model's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonRepairError {
    /// The answer has no `{` or `[` at all.
    #[error("the answer holds no JSON object: it has no `{{` or `[`")]
    NoJson,
    /// Brackets were found, but nothing between them parses; serde_json's message for the
    /// repaired text of the first candidate.
    #[error("the answer's JSON does not parse even after repair: {0}")]
    Invalid(String),
}

/// Closing tags of the reasoning blocks that thinking models write before their answer.
/// Some servers strip the opening tag, so only the closing one is looked for.
const REASONING_ENDS: [&str; 2] = ["</think>", "</thinking>"];

/// How much input the attempts of one search may scan together, as a multiple of its length.
/// A failed attempt can scan to the end of the text, so without a bound an answer full of
/// unclosed brackets would cost quadratic time; this keeps it linear, while cheap attempts
/// (the `[1]`s of prose) stay unlimited in number.
const SCAN_BUDGET_PER_BYTE: usize = 32;

/// The scan budget of short texts, which need not be stingy.
const MIN_SCAN_BUDGET: usize = 1 << 16;

/// Reads the first JSON object (or array) in `text`, repairing what models commonly get wrong.
///
/// Reasoning blocks (`<think>…</think>`) are skipped. Fenced blocks tagged `json` or untagged
/// are tried first, in order, then the whole answer. Within a text every opening bracket is
/// tried in order and the first that parses after repair wins, except that an array of plain
/// scalars (a `[1]` in prose) only wins when no object follows it.
///
/// The repairs: trailing and doubled commas, missing commas and colons, single-quoted and
/// smart-quoted strings, unquoted keys, Python's `True`/`False`/`None`, `//`, `/* */` and `#`
/// comments, raw control characters and stray backslashes in strings, numbers like `+1`,
/// `.5` or `1.`, mismatched or stray closing brackets, and answers cut off mid-object
/// (open strings and brackets are closed, a dangling key gets `null`). When that is not
/// enough, unescaped quotes inside strings are taken literally unless they end the string
/// before a `,` `:` `}` `]`, a comment or the end of the line.
pub fn extract_json(text: &str) -> Result<Value, JsonRepairError> {
    let answer = strip_reasoning(text);
    let mut first_error = None;
    for fence in fenced_blocks(answer).iter().filter(|fence| is_json_lang(&fence.lang)) {
        // The value must start in the fence but may run past where the fence seems to close:
        // a string with a raw newline and ``` inside would otherwise cut it short.
        match find_value(&answer[fence.span.start..], fence.span.len()) {
            Ok(value) => return Ok(value),
            Err(JsonRepairError::Invalid(message)) => {
                first_error.get_or_insert(message);
            }
            Err(JsonRepairError::NoJson) => {}
        }
    }
    // Fences can be missing, inline, mislabelled or broken, so the whole answer is searched
    // too; a fence's error is the more telling one, since the fence was meant as the answer.
    find_value(answer, answer.len()).map_err(|error| first_error.map_or(error, JsonRepairError::Invalid))
}

/// The Python script in a model's answer: the body of the longest ```python / ```py / ```
/// fenced block (a block whose fence is never closed runs to the end), or, with no fence, the
/// text with leading and trailing prose lines removed (prose = lines before the first line that
/// looks like Python code: starts with import/from/def/class/#/"""/@/a name followed by = or (,
/// etc.; trailing prose = lines after the last code-looking line that are plain English
/// sentences). Always ends with one "\n".
///
/// Line endings become `\n`, reasoning blocks (`<think>…</think>`) are skipped, a common
/// indentation (an indented fence or Markdown code block) is removed, and when no fence is
/// tagged as Python the longest fence of any tag is taken.
pub fn extract_code(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let answer = strip_reasoning(&text);
    finish_code(&dedent(&script(answer)))
}

/// The script's lines in `answer`: the longest Python fence, or the code before a closing
/// fence that was never opened, or the longest fence of any tag, or the unfenced code.
fn script(answer: &str) -> String {
    let (unopened, rest) = match split_unopened_block(answer) {
        Some((code, rest)) => (Some(code), rest),
        None => (None, answer),
    };
    let fences = fenced_blocks(rest);
    let python =
        longest(fences.iter().filter(|fence| is_python_lang(&fence.lang))).map(|fence| &rest[fence.span.clone()]);
    match (unopened, python) {
        (Some(code), Some(body)) if body.len() > code.len() => body.to_string(),
        (Some(code), _) => code,
        (None, Some(body)) => body.to_string(),
        (None, None) => match longest(fences.iter()) {
            Some(fence) => rest[fence.span.clone()].to_string(),
            None => strip_prose(rest),
        },
    }
}

/// The code before a bare fence that closes a block the answer never opened (a model that
/// starts straight with the script and ends it with ```), and the text after that fence.
/// The fence is taken for a closer when the code is before it and none after it.
fn split_unopened_block(answer: &str) -> Option<(String, &str)> {
    let first = fenced_blocks(answer).into_iter().next()?;
    let bare = answer[first.opener..first.span.start].trim() == "```";
    let before = &answer[..first.opener];
    let after = &answer[first.span.start..];
    let is_closer = bare && has_statement(before) && !has_statement(&answer[first.span.clone()]);
    is_closer.then(|| (strip_prose(before), after))
}

/// Whether `text` has a line of Python other than a comment, which could be a Markdown heading.
fn has_statement(text: &str) -> bool {
    text.lines().any(|line| looks_like_code(line) && !line.trim_start().starts_with('#'))
}

/// The answer after the reasoning blocks, which may draft JSON or code the answer revises.
/// The first closing tag ends a block: reasoning comes first, and the answer's own strings
/// are likelier to mention the tag than the reasoning is. A text that opens like an answer
/// (`{`, `[`, a fence) has no reasoning, whatever tags its strings hold.
fn strip_reasoning(text: &str) -> &str {
    let mut answer = text;
    loop {
        if answer.trim_start().starts_with(['{', '[', '`']) {
            return answer;
        }
        let Some(end) = REASONING_ENDS.iter().filter_map(|tag| answer.find(tag).map(|at| at + tag.len())).min() else {
            return answer;
        };
        answer = &answer[end..];
        if !answer.trim_start().starts_with("<think") {
            return answer;
        }
    }
}

/// A Markdown fenced block.
#[derive(Debug)]
struct Fence {
    /// The first word of the info string, lowercased; empty for a bare fence.
    lang: String,
    /// Where the opening fence's line starts.
    opener: usize,
    /// Where the text between the fences is.
    span: Range<usize>,
}

/// The fenced blocks of `text`, in order. Models bend Markdown, so a closing fence may end a
/// content line (`}```), a block may open and close on one line, and an unclosed block runs
/// to the end of the text.
fn fenced_blocks(text: &str) -> Vec<Fence> {
    let mut fences = Vec::new();
    // The block being read, its end still unknown.
    let mut open: Option<Fence> = None;
    let mut next_line = 0;
    for line in text.split_inclusive('\n') {
        let line_start = next_line;
        next_line += line.len();
        let trimmed = line.trim();
        if let Some(mut fence) = open.take() {
            let content = line.trim_end();
            if trimmed.starts_with("```") {
                fence.span.end = line_start;
                fences.push(fence);
            } else if content.ends_with("```") {
                fence.span.end = line_start + content.len() - 3;
                fences.push(fence);
            } else {
                open = Some(fence);
            }
        } else if let Some(info) = trimmed.strip_prefix("```") {
            let info = info.trim_start_matches('`');
            let lang_len = info.find(|c: char| !is_lang_char(c)).unwrap_or(info.len());
            let (lang, rest) = info.split_at(lang_len);
            let lang = lang.to_lowercase();
            // Text after the tag is an info string (`title="x.py"`) unless the block closes
            // on the same line.
            match rest.find("```") {
                Some(len) => {
                    let indent = line.len() - line.trim_start().len();
                    let start = line_start + indent + trimmed.len() - rest.len();
                    fences.push(Fence { lang, opener: line_start, span: start..start + len });
                }
                None => open = Some(Fence { lang, opener: line_start, span: next_line..next_line }),
            }
        }
    }
    if let Some(mut fence) = open {
        fence.span.end = text.len();
        fences.push(fence);
    }
    fences
}

/// Whether `c` can be part of a fence's language tag (`python3`, `c++`, `objective-c`, `c#`).
fn is_lang_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '#')
}

/// Whether a fence with this tag may hold the JSON answer (`json`, `jsonc`, `json5`, bare).
fn is_json_lang(lang: &str) -> bool {
    lang.is_empty() || lang.starts_with("json")
}

/// Whether a fence with this tag may hold the script (`python`, `py`, `python3`, bare).
fn is_python_lang(lang: &str) -> bool {
    lang.is_empty() || lang.starts_with("py")
}

/// The fence with the longest body; the first of equals, since answers lead with the script.
fn longest<'f>(fences: impl Iterator<Item = &'f Fence>) -> Option<&'f Fence> {
    fences.reduce(|best, fence| if fence.span.len() > best.span.len() { fence } else { best })
}

/// The first JSON value in `text` that starts in its first `starts_within` bytes, trying each
/// opening bracket in turn.
fn find_value(text: &str, starts_within: usize) -> Result<Value, JsonRepairError> {
    let mut starts = text
        .char_indices()
        .take_while(|&(at, _)| at < starts_within)
        .filter(|&(_, c)| c == '{' || c == '[')
        .map(|(at, _)| at)
        .peekable();
    if starts.peek().is_none() {
        return Err(JsonRepairError::NoJson);
    }
    let mut first_error = None;
    let mut flat_array = None;
    let mut resume = 0;
    let budget = text.len().saturating_mul(SCAN_BUDGET_PER_BYTE).max(MIN_SCAN_BUDGET);
    let mut scanned = 0usize;
    for start in starts {
        if start < resume {
            continue;
        }
        if scanned >= budget {
            break;
        }
        let attempt = parse_at(&text[start..]);
        scanned = scanned.saturating_add(attempt.scanned);
        match attempt.value {
            // `[1]` or `["a"]` is as likely a bit of prose as an answer: keep looking for an
            // object after it, and settle for the array only when there is none.
            Ok(value) if is_flat_array(&value) => {
                flat_array.get_or_insert(value);
                resume = start + attempt.end;
            }
            Ok(value) => return Ok(value),
            Err(message) => {
                first_error.get_or_insert(message);
                // A candidate whose brackets balance but whose content does not parse is a
                // broken answer, and a fragment of it would pass for the whole. One left unclosed
                // may be prose with a stray bracket, so the brackets inside it are still tried.
                if attempt.closed {
                    resume = start + attempt.end;
                }
            }
        }
    }
    match (flat_array, first_error) {
        (Some(value), _) => Ok(value),
        (None, Some(message)) => Err(JsonRepairError::Invalid(message)),
        (None, None) => Err(JsonRepairError::NoJson),
    }
}

/// Whether `value` is an array holding no object or array.
fn is_flat_array(value: &Value) -> bool {
    value.as_array().is_some_and(|items| items.iter().all(|item| !item.is_object() && !item.is_array()))
}

/// The outcome of reading one candidate.
struct Attempt {
    /// The value, or serde_json's message for the repaired text.
    value: Result<Value, String>,
    /// Bytes of the input the candidate spans.
    end: usize,
    /// Whether its first bracket was closed before the input ended.
    closed: bool,
    /// Bytes read by all the passes, for the scan budget.
    scanned: usize,
}

/// Repairs and parses the value that starts at the beginning of `text`.
fn parse_at(text: &str) -> Attempt {
    let strict = repair(text, false);
    let error = match serde_json::from_str(&strict.json) {
        Ok(value) => return Attempt { value: Ok(value), end: strict.end, closed: strict.closed, scanned: strict.end },
        Err(error) => error,
    };
    // Reading quotes leniently can misplace a string's end, so it is only the fallback.
    let lenient = repair(text, true);
    let scanned = strict.end + lenient.end;
    match serde_json::from_str(&lenient.json) {
        Ok(value) => Attempt { value: Ok(value), end: lenient.end, closed: lenient.closed, scanned },
        Err(_) => Attempt { value: Err(error.to_string()), end: strict.end, closed: strict.closed, scanned },
    }
}

/// The role of the last token written, which decides what the next one needs before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// `{` or `[`.
    Open,
    /// A separating comma.
    Comma,
    /// A colon after a key.
    Colon,
    /// An object key.
    Key,
    /// A complete value.
    Value,
}

/// A candidate rewritten as strict JSON.
struct Repaired {
    /// The rewritten text.
    json: String,
    /// Bytes of the input consumed: through the closing bracket, or up to where it stopped.
    end: usize,
    /// Whether the first bracket was closed before the input ended.
    closed: bool,
}

/// Rewrites the bracketed value at the start of `text` as JSON, stopping after its closing
/// bracket, or at a Markdown fence outside strings, which ends an answer cut off inside a
/// fenced block. `lenient` takes a quote inside a string literally unless it ends the string.
fn repair(text: &str, lenient: bool) -> Repaired {
    let repairer = Repairer {
        text,
        pos: 0,
        out: String::with_capacity(text.len().min(1 << 16)),
        closers: Vec::new(),
        last: Last::Open,
        comma_at: 0,
        lenient,
    };
    repairer.run()
}

/// A one-pass tokenizer that copies tokens to `out`, mending them on the way.
struct Repairer<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
    out: String,
    /// The closing brackets still owed, innermost last.
    closers: Vec<char>,
    last: Last,
    /// Where in `out` the last separating comma is, to take it back before a closer.
    comma_at: usize,
    lenient: bool,
}

impl<'a> Repairer<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn run(mut self) -> Repaired {
        while let Some(c) = self.peek() {
            match c {
                '{' | '[' => self.open(c),
                '}' | ']' => {
                    self.bump(c);
                    self.close(c);
                    if self.closers.is_empty() {
                        return Repaired { json: self.out, end: self.pos, closed: true };
                    }
                }
                ',' => self.comma(),
                ':' => {
                    self.bump(c);
                    self.out.push(':');
                    self.last = Last::Colon;
                }
                '"' | '\'' | '“' => self.string(c),
                '`' if self.rest().starts_with("```") => break,
                '#' => self.comment(),
                '/' if self.rest().starts_with("//") || self.rest().starts_with("/*") => self.comment(),
                '-' | '+' | '.' | '0'..='9' => self.number(),
                c if c.is_alphabetic() || c == '_' || c == '$' => self.word(),
                c if c.is_whitespace() => {
                    self.bump(c);
                    // JSON allows only ASCII whitespace; a no-break space is still a space.
                    self.out.push(if matches!(c, ' ' | '\t' | '\n' | '\r') { c } else { ' ' });
                }
                // Nothing to mend: serde_json will say what is wrong.
                c => {
                    self.bump(c);
                    self.out.push(c);
                }
            }
        }
        // The answer was cut off: close what is still open.
        while let Some(closer) = self.closers.pop() {
            self.end_container(closer, true);
        }
        Repaired { json: self.out, end: self.pos, closed: false }
    }

    /// Writes what the previous token lacks before a new key or value: the comma between two
    /// values, the colon after a key.
    fn before_value(&mut self) {
        match self.last {
            Last::Value => self.push_comma(),
            Last::Key => {
                self.out.push(':');
                self.last = Last::Colon;
            }
            Last::Open | Last::Comma | Last::Colon => {}
        }
    }

    fn push_comma(&mut self) {
        self.comma_at = self.out.len();
        self.out.push(',');
        self.last = Last::Comma;
    }

    /// Whether a string or word starting now is an object key.
    fn at_key(&self) -> bool {
        self.closers.last() == Some(&'}') && matches!(self.last, Last::Open | Last::Comma)
    }

    fn open(&mut self, c: char) {
        self.bump(c);
        self.before_value();
        self.out.push(c);
        self.closers.push(if c == '{' { '}' } else { ']' });
        self.last = Last::Open;
    }

    /// Closes up to the bracket `c` matches. Brackets left open inside it were forgotten and
    /// are closed too; a closer that matches nothing open is dropped.
    fn close(&mut self, c: char) {
        if !self.closers.contains(&c) {
            return;
        }
        while let Some(closer) = self.closers.pop() {
            self.end_container(closer, false);
            if closer == c {
                break;
            }
        }
    }

    /// Writes `closer`, taking back a trailing comma. In an answer that was `cut_off`, a key
    /// left without a value gets `null`; elsewhere such a key is more likely a misread value
    /// (`'it''s'`) and is left for serde_json to reject.
    fn end_container(&mut self, closer: char, cut_off: bool) {
        match self.last {
            Last::Comma => {
                self.out.remove(self.comma_at);
            }
            Last::Colon if cut_off => self.out.push_str("null"),
            Last::Key if cut_off => self.out.push_str(":null"),
            Last::Colon | Last::Key | Last::Open | Last::Value => {}
        }
        self.out.push(closer);
        self.last = Last::Value;
    }

    fn comma(&mut self) {
        self.bump(',');
        // A comma after `{`, `[`, `:` or another comma separates nothing.
        if matches!(self.last, Last::Value | Last::Key) {
            self.push_comma();
        }
    }

    /// Copies a string quoted with `"`, `'` or `“ ”` as a double-quoted JSON string. A string
    /// the answer never closes is closed at its end.
    fn string(&mut self, open: char) {
        self.bump(open);
        self.before_value();
        let role = if self.at_key() { Last::Key } else { Last::Value };
        let close = if open == '“' { '”' } else { open };
        self.out.push('"');
        while let Some(c) = self.peek() {
            self.bump(c);
            if c == close && self.string_ends_here() {
                break;
            }
            match c {
                '\\' => self.escape(),
                // Only reached inside a `'` or `“` string, or when read leniently.
                '"' => self.out.push_str("\\\""),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if c < ' ' => self.out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self.last = role;
    }

    /// Whether the closing quote just read ends the string. Leniently, a quote is taken as
    /// text unless what follows it on the line could follow a string.
    fn string_ends_here(&self) -> bool {
        if !self.lenient {
            return true;
        }
        let after = self.rest().trim_start_matches([' ', '\t']);
        match after.chars().next() {
            None | Some(',' | ':' | '}' | ']' | '\n' | '\r' | '#') => true,
            Some('/') => after.starts_with("//") || after.starts_with("/*"),
            Some(_) => false,
        }
    }

    /// Copies the escape after a backslash inside a string.
    fn escape(&mut self) {
        let Some(c) = self.peek() else {
            // Cut off right after the backslash: drop it.
            return;
        };
        let rest = self.rest();
        match c {
            '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => {
                self.bump(c);
                self.out.push('\\');
                self.out.push(c);
            }
            'u' if rest.get(1..5).is_some_and(|hex| hex.chars().all(|h| h.is_ascii_hexdigit())) => {
                self.bump(c);
                self.out.push_str("\\u");
            }
            // Python's escape for a quote inside a single-quoted string.
            '\'' => {
                self.bump(c);
                self.out.push('\'');
            }
            // Any other (a regex `\d`, a Windows path) was meant as a backslash; the character
            // after it is read as usual.
            _ => self.out.push_str("\\\\"),
        }
    }

    /// Skips a `//`, `#` or `/* */` comment.
    fn comment(&mut self) {
        let rest = self.rest();
        let len = if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |at| at + 2)
        } else {
            rest.find('\n').unwrap_or(rest.len())
        };
        self.pos += len;
        // Keeps the tokens on either side of a block comment apart.
        self.out.push(' ');
    }

    fn number(&mut self) {
        self.before_value();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')))
            .unwrap_or(rest.len());
        self.pos += len;
        let cut_off = self.rest().is_empty() || self.rest().starts_with("```");
        let number = normalize_number(&rest[..len], cut_off);
        // A number cut off before its first digit is dropped; the comma or colon before it
        // is mended when the container closes.
        if !number.is_empty() {
            self.out.push_str(&number);
            self.last = Last::Value;
        }
    }

    /// A bare word: an unquoted key, a Python or JSON literal, or text left for serde_json
    /// to reject. Bare words are not quoted as values, since in prose they are prose.
    fn word(&mut self) {
        let rest = self.rest();
        let len = rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '$' | '-'))).unwrap_or(rest.len());
        let word = &rest[..len];
        self.pos += len;
        self.before_value();
        if self.at_key() && self.rest().trim_start().starts_with(':') {
            self.out.push('"');
            self.out.push_str(word);
            self.out.push('"');
            self.last = Last::Key;
            return;
        }
        let literal = match word {
            "True" => "true",
            "False" => "false",
            "None" => "null",
            other => other,
        };
        self.out.push_str(literal);
        self.last = Last::Value;
    }
}

/// Mends the number forms JSON refuses but models write: `+1`, `.5`, `1.`, and, at the end of
/// a cut-off answer, a dangling exponent or sign (`1e`, `2.5e-`). Anything without a digit is
/// left for serde_json to reject.
fn normalize_number(raw: &str, cut_off: bool) -> String {
    let raw = if cut_off { raw.trim_end_matches(['e', 'E', '+', '-', '.']) } else { raw };
    let unsigned = raw.strip_prefix('+').unwrap_or(raw);
    let (sign, digits) = match unsigned.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", unsigned),
    };
    if !digits.bytes().any(|b| b.is_ascii_digit()) {
        return raw.to_string();
    }
    let mut number = String::from(sign);
    if digits.starts_with('.') {
        number.push('0');
    }
    number.push_str(digits);
    if digits.ends_with('.') {
        number.push('0');
    }
    number
}

/// An unfenced answer without the prose before the first code line and the sentences after
/// the last. Without any code-looking line it is returned whole.
fn strip_prose(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.iter().position(|line| looks_like_code(line)) else {
        return text.to_string();
    };
    let mut end = lines.len();
    while end > first + 1 && (lines[end - 1].trim().is_empty() || is_prose_sentence(lines[end - 1])) {
        end -= 1;
    }
    lines[first..end].join("\n")
}

/// Whether a line is unmistakably Python: the line that ends an answer's introduction.
fn looks_like_code(line: &str) -> bool {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with("\"\"\"") || line.starts_with("'''") {
        return true;
    }
    if let Some(decorated) = line.strip_prefix('@') {
        return dotted_name_len(decorated) > 0;
    }
    if let Some(names) = line.strip_prefix("import ") {
        return is_import_list(names);
    }
    if let Some(rest) = line.strip_prefix("from ") {
        return is_from_import(rest);
    }
    let header = line.strip_prefix("async ").unwrap_or(line);
    if let Some(rest) = header.strip_prefix("def ") {
        let name = dotted_name_len(rest);
        return name > 0 && rest[name..].starts_with('(');
    }
    if let Some(rest) = line.strip_prefix("class ") {
        let name = dotted_name_len(rest);
        return name > 0 && rest[name..].trim_start().starts_with(['(', ':']);
    }
    let keyword = header.split([' ', ':', '(']).next().unwrap_or("");
    if matches!(keyword, "if" | "elif" | "while" | "for" | "with" | "else" | "try" | "except" | "finally") {
        return is_compound_header(keyword, header);
    }
    is_assignment_or_call(line)
}

/// Whether `line`, starting with `keyword`, is a compound statement's header rather than a
/// sentence starting with "if", "for" or "with" that happens to end with a colon.
fn is_compound_header(keyword: &str, line: &str) -> bool {
    let Some(body) = strip_comment(line).trim_end().strip_suffix(':') else {
        return false;
    };
    let rest = body[keyword.len()..].trim();
    match keyword {
        "else" | "try" | "finally" => rest.is_empty(),
        "except" => true,
        "for" => body.contains(" in "),
        "with" => rest.contains('(') || rest.contains(" as "),
        // `if ok:` or a condition with code punctuation; "if you want:" is a sentence.
        _ => {
            rest.contains(|c: char| "()[]=<>!.\"'".contains(c))
                || (!rest.is_empty() && dotted_name_len(rest) == rest.len())
        }
    }
}

/// `line` without a trailing `# comment` (a `#` inside a string is rare in a header).
fn strip_comment(line: &str) -> &str {
    line.find(" #").map_or(line, |at| &line[..at])
}

/// Whether `names` is what follows `import`: dotted names, each maybe `as` another name.
fn is_import_list(names: &str) -> bool {
    strip_comment(names).split(',').all(|name| {
        let mut words = name.split_whitespace();
        let is_name = |word: Option<&str>| word.is_some_and(|word| dotted_name_len(word) == word.len());
        match (words.next(), words.next(), words.next(), words.next()) {
            (module, None, None, None) => is_name(module),
            (module, Some("as"), alias, None) => is_name(module) && is_name(alias),
            _ => false,
        }
    })
}

/// Whether `rest` is what follows `from` in `from module import names`.
fn is_from_import(rest: &str) -> bool {
    let mut words = rest.split_whitespace();
    let module = words.next().unwrap_or("").trim_start_matches('.');
    dotted_name_len(module) == module.len() && words.next() == Some("import")
}

/// Whether a line starts with a name followed by `(` or `[` (a call, a subscript) or, after
/// more comma-separated names, by an assignment operator.
fn is_assignment_or_call(line: &str) -> bool {
    let mut rest = line;
    loop {
        let name = dotted_name_len(rest);
        if name == 0 {
            return false;
        }
        rest = &rest[name..];
        if rest.starts_with(['(', '[']) {
            return true;
        }
        match rest.trim_start().strip_prefix(',') {
            Some(more) => rest = more.trim_start(),
            None => return is_assignment_op(rest.trim_start()),
        }
    }
}

/// Whether `rest` starts with `=` (not `==`) or an augmented assignment such as `+=`.
fn is_assignment_op(rest: &str) -> bool {
    const AUGMENTED: [&str; 13] = ["+=", "-=", "*=", "/=", "//=", "%=", "**=", "@=", "&=", "|=", "^=", ">>=", "<<="];
    (rest.starts_with('=') && !rest.starts_with("==")) || AUGMENTED.iter().any(|op| rest.starts_with(op))
}

/// The byte length of the Python identifier, or dotted chain of them, that starts `text`.
fn dotted_name_len(text: &str) -> usize {
    let mut len = identifier_len(text);
    while len > 0 && text[len..].starts_with('.') {
        match identifier_len(&text[len + 1..]) {
            0 => break,
            next => len += 1 + next,
        }
    }
    len
}

/// The byte length of the Python identifier that starts `text`.
fn identifier_len(text: &str) -> usize {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_alphabetic() || c == '_' => {}
        _ => return 0,
    }
    chars.find(|&(_, c)| !(c.is_alphanumeric() || c == '_')).map_or(text.len(), |(at, _)| at)
}

/// Whether a line after the code is a sentence of explanation: unindented, starting with a
/// capital letter (after any list or emphasis marker), without code punctuation outside
/// backticks, and either several words or one ending like a sentence ("Explanation:").
fn is_prose_sentence(line: &str) -> bool {
    if line.starts_with([' ', '\t']) || looks_like_code(line) {
        return false;
    }
    let text = line.trim().trim_start_matches(['-', '*', '>', ' ']);
    if !text.chars().next().is_some_and(char::is_uppercase) {
        return false;
    }
    let outside_backticks: String = text.split('`').step_by(2).collect();
    if outside_backticks.contains(['=', '{', '}', ';']) {
        return false;
    }
    text.split_whitespace().count() >= 2 || text.trim_end_matches('*').ends_with(['.', ':', '!', '?'])
}

/// `code` without the indentation all its non-blank lines share.
fn dedent(code: &str) -> String {
    let indent = code
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .reduce(common_prefix)
        .unwrap_or("");
    if indent.is_empty() {
        return code.to_string();
    }
    code.lines().map(|line| line.strip_prefix(indent).unwrap_or(line.trim_start())).collect::<Vec<_>>().join("\n")
}

/// The longest common prefix of `a` and `b`.
fn common_prefix<'s>(a: &'s str, b: &str) -> &'s str {
    let end = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or_else(|| a.len().min(b.len()), |((at, _), _)| at);
    &a[..end]
}

/// `code` from its first non-blank line, with trailing blank space replaced by one newline.
fn finish_code(code: &str) -> String {
    let code = code.trim_end();
    let first = code.find(|c: char| !c.is_whitespace()).unwrap_or(code.len());
    let line_start = code[..first].rfind('\n').map_or(0, |at| at + 1);
    let mut finished = code[line_start..].to_string();
    finished.push('\n');
    finished
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(text: &str) -> Value {
        match extract_json(text) {
            Ok(value) => value,
            Err(error) => panic!("no JSON in {text:?}: {error}"),
        }
    }

    // --- extract_json: finding the value ---

    #[test]
    fn plain_json() {
        assert_eq!(parsed(r#"{"goal": "count rows", "n": 3}"#), json!({"goal": "count rows", "n": 3}));
        assert_eq!(parsed(r#"[{"a": 1}, {"a": 2}]"#), json!([{"a": 1}, {"a": 2}]));
    }

    #[test]
    fn json_surrounded_by_prose() {
        let text = "Sure! Here is the plan: {\"goal\": \"sum sales\", \"steps\": [\"load\", \"sum\"]} \
                    Let me know if you'd like changes.";
        assert_eq!(parsed(text), json!({"goal": "sum sales", "steps": ["load", "sum"]}));
    }

    #[test]
    fn json_fence_and_bare_fence() {
        let tagged = "Here you go:\n```json\n{\"goal\": \"x\"}\n```\nDone.";
        assert_eq!(parsed(tagged), json!({"goal": "x"}));
        let bare = "Here you go:\n```\n{\"goal\": \"y\"}\n```";
        assert_eq!(parsed(bare), json!({"goal": "y"}));
        let inline = "```json {\"goal\": \"z\"}```";
        assert_eq!(parsed(inline), json!({"goal": "z"}));
    }

    #[test]
    fn first_fence_that_parses_wins() {
        let text = "First try:\n```json\n{\"goal\": nonsense here}\n```\nFixed:\n```json\n{\"goal\": \"fixed\"}\n```\n\
                    ```json\n{\"goal\": \"third\"}\n```";
        assert_eq!(parsed(text), json!({"goal": "fixed"}));
    }

    #[test]
    fn non_json_fences_are_not_taken_for_the_answer() {
        let text = "```python\nrows = {\"a\": 1}\n```\n```json\n{\"goal\": \"x\"}\n```";
        assert_eq!(parsed(text), json!({"goal": "x"}));
    }

    #[test]
    fn reasoning_blocks_are_ignored() {
        let text = "<think>Maybe {\"goal\": \"draft\"}? No, better:</think>\n{\"goal\": \"final\"}";
        assert_eq!(parsed(text), json!({"goal": "final"}));
        // Servers that put the opening tag in the prompt leave only the closing one.
        let text = "I think {\"goal\": \"draft\"} works.\n</think>\n\n{\"goal\": \"final\"}";
        assert_eq!(parsed(text), json!({"goal": "final"}));
    }

    #[test]
    fn reasoning_tags_inside_the_answer_are_text() {
        let text = "<think>plan</think>\n{\"note\": \"models end reasoning with </think>\"}";
        assert_eq!(parsed(text), json!({"note": "models end reasoning with </think>"}));
        let text = "{\"note\": \"models end reasoning with </think>\", \"n\": 1}";
        assert_eq!(parsed(text), json!({"note": "models end reasoning with </think>", "n": 1}));
        let text = "<think>a</think>\n<think>b {\"x\": 1}</think>\n{\"goal\": 2}";
        assert_eq!(parsed(text), json!({"goal": 2}));
    }

    #[test]
    fn fences_inside_json_strings() {
        let text = "```json\n{\"code\": \"```python\nprint(1)\n```\", \"n\": 1}\n```";
        assert_eq!(parsed(text), json!({"code": "```python\nprint(1)\n```", "n": 1}));
    }

    #[test]
    fn cut_off_inside_a_fence() {
        let text = "```json\n{\"a\": [1, 2\n```\nSorry, I ran out of room.";
        assert_eq!(parsed(text), json!({"a": [1, 2]}));
    }

    #[test]
    fn balanced_scan_respects_strings() {
        let text = r#"Here: {"a": "} and ]", "b": "{"} and then {"c": 1}"#;
        assert_eq!(parsed(text), json!({"a": "} and ]", "b": "{"}));
    }

    #[test]
    fn objects_are_preferred_to_scalar_arrays_in_prose() {
        let text = "Step [1] is done. The plan: {\"goal\": \"x\"}";
        assert_eq!(parsed(text), json!({"goal": "x"}));
        assert_eq!(parsed("The list: [1, 2, 3] as asked."), json!([1, 2, 3]));
        assert_eq!(parsed("[{\"a\": 1}] and {\"b\": 2}"), json!([{"a": 1}]));
    }

    #[test]
    fn a_stray_unclosed_bracket_in_prose_is_skipped() {
        let text = "I use {braces like this and here it is: {\"goal\": \"x\"}";
        assert_eq!(parsed(text), json!({"goal": "x"}));
    }

    #[test]
    fn a_broken_object_does_not_yield_its_inner_object() {
        let error = extract_json(r#"{"a": {"b": 1}, "c": nonsense}"#).unwrap_err();
        assert!(matches!(error, JsonRepairError::Invalid(_)), "{error:?}");
    }

    #[test]
    fn no_json_and_invalid() {
        assert_eq!(extract_json("I could not produce a plan."), Err(JsonRepairError::NoJson));
        assert_eq!(extract_json(""), Err(JsonRepairError::NoJson));
        let error = extract_json("{\"goal\": count the rows}").unwrap_err();
        let JsonRepairError::Invalid(message) = &error else { panic!("{error:?}") };
        assert!(message.contains("line 1"), "{message}");
        assert!(error.to_string().starts_with("the answer's JSON does not parse even after repair: "));
        assert!(JsonRepairError::NoJson.to_string().contains("no JSON object"));
    }

    // --- extract_json: repairs ---

    #[test]
    fn trailing_commas() {
        assert_eq!(parsed(r#"{"a": [1, 2, ], "b": {"c": 3,},}"#), json!({"a": [1, 2], "b": {"c": 3}}));
        assert_eq!(parsed("[1, 2,\n]"), json!([1, 2]));
    }

    #[test]
    fn doubled_leading_and_missing_commas() {
        assert_eq!(parsed("[, 1,, 2]"), json!([1, 2]));
        assert_eq!(parsed("{\"a\": 1\n \"b\": 2}"), json!({"a": 1, "b": 2}));
        assert_eq!(parsed("[{\"a\": 1} {\"a\": 2}]"), json!([{"a": 1}, {"a": 2}]));
        assert_eq!(parsed("{\"a\" 1}"), json!({"a": 1}));
    }

    #[test]
    fn single_quoted_strings() {
        assert_eq!(parsed("{'goal': 'count rows', 'n': 2}"), json!({"goal": "count rows", "n": 2}));
        assert_eq!(parsed(r"{'note': 'it\'s fine'}"), json!({"note": "it's fine"}));
        assert_eq!(parsed(r#"{'say': 'a "quoted" word'}"#), json!({"say": "a \"quoted\" word"}));
    }

    #[test]
    fn unquoted_keys() {
        assert_eq!(
            parsed(r#"{goal: "x", max_rows: 3, nested: {ok: 1}}"#),
            json!({"goal": "x", "max_rows": 3, "nested": {"ok": 1}})
        );
    }

    #[test]
    fn python_literals() {
        assert_eq!(
            parsed(r#"{"a": True, "b": False, "c": None, "d": [True, None]}"#),
            json!({"a": true, "b": false, "c": null, "d": [true, null]})
        );
    }

    #[test]
    fn comments() {
        let text = "{\n  // the goal\n  \"goal\": \"x\", # why\n  \"n\": /* two */ 2\n}";
        assert_eq!(parsed(text), json!({"goal": "x", "n": 2}));
    }

    #[test]
    fn truncated_answers_are_closed() {
        assert_eq!(parsed(r#"{"steps": ["load", "sum"#), json!({"steps": ["load", "sum"]}));
        assert_eq!(parsed(r#"{"a": 1, "b": {"c": [1, 2,"#), json!({"a": 1, "b": {"c": [1, 2]}}));
        assert_eq!(parsed(r#"{"a": 1, "b":"#), json!({"a": 1, "b": null}));
        assert_eq!(parsed(r#"{"a": 1, "b"#), json!({"a": 1, "b": null}));
        assert_eq!(parsed(r#"{"a": 1.5e"#), json!({"a": 1.5}));
        assert_eq!(parsed(r#"{"a": "x\"#), json!({"a": "x"}));
    }

    #[test]
    fn smart_quotes() {
        assert_eq!(parsed("{“goal”: “count rows”}"), json!({"goal": "count rows"}));
        assert_eq!(parsed("{“say”: “a \"b\"”}"), json!({"say": "a \"b\""}));
    }

    #[test]
    fn a_key_without_value_is_only_mended_when_cut_off() {
        assert!(extract_json(r#"{"a": 1 "y"}"#).is_err());
        assert!(extract_json("{'a': 'it''s'}").is_ok_and(|value| value != json!({"a": "it", "s": null})));
        assert!(extract_json(r#"{"a": }"#).is_err());
    }

    #[test]
    fn long_answers_stay_linear() {
        let mut prose = "Some prose with a [bracket] and {brace} here. ".repeat(5000);
        prose.push_str(r#"{"goal": "x"}"#);
        assert_eq!(parsed(&prose), json!({"goal": "x"}));
        let unclosed = "{a ".repeat(20_000);
        assert!(extract_json(&unclosed).is_err());
    }

    #[test]
    fn mismatched_and_stray_closers() {
        assert_eq!(parsed(r#"{"a": [1, 2}"#), json!({"a": [1, 2]}));
        assert_eq!(parsed(r#"{"a": 1]}"#), json!({"a": 1}));
    }

    #[test]
    fn numbers_models_write() {
        assert_eq!(parsed("[+1, .5, -.5, 2.]"), json!([1, 0.5, -0.5, 2.0]));
    }

    #[test]
    fn string_contents_are_never_altered() {
        let inner = r#"a {b} [c], 'd' \"e\" True None False // not a comment # nor this, }"#;
        let text = format!(r#"{{"text": "{inner}", 'other': 'x, ] True',}}"#);
        let expected = r#"a {b} [c], 'd' "e" True None False // not a comment # nor this, }"#;
        assert_eq!(parsed(&text), json!({"text": expected, "other": "x, ] True"}));
    }

    #[test]
    fn control_characters_and_stray_backslashes_in_strings() {
        assert_eq!(parsed("{\"code\": \"a = 1\n\tb = 2\"}"), json!({"code": "a = 1\n\tb = 2"}));
        assert_eq!(
            parsed(r#"{"re": "\d+\.\d*", "path": "C:\temp\x"}"#),
            json!({"re": r"\d+\.\d*", "path": "C:\temp\\x"})
        );
        assert_eq!(parsed(r#"{"u": "\u00e9\u12"}"#), json!({"u": "é\\u12"}));
    }

    #[test]
    fn unescaped_quotes_inside_strings() {
        assert_eq!(
            parsed(r#"{"answer": "She said "yes" to it", "n": 1}"#),
            json!({"answer": "She said \"yes\" to it", "n": 1})
        );
        assert_eq!(parsed("{'note': 'don't stop'}"), json!({"note": "don't stop"}));
    }

    #[test]
    fn no_panic_on_odd_input() {
        let samples = [
            r#"Sure! ```json {"goal": "x", 'b': [1, 2.5e-3, True, None], c: "q\"uo{te}"} ``` //x"#,
            "<think>{</think>“a”: ‘b’ [[[{{{ \\ \\u12 /* # \" ' ` ```python\nx = 1\n``` Here is it.",
            "ä{ö:'ü\u{0}\u{1f}\u{a0}'}é]}[]\r\n\t—“”‘’ 🎉{\"🎉\": \"🎉\"}",
        ];
        for sample in samples {
            for (end, _) in sample.char_indices().chain([(sample.len(), ' ')]) {
                let _ = extract_json(&sample[..end]);
                let _ = extract_json(&sample[end..]);
                assert!(extract_code(&sample[..end]).ends_with('\n'));
            }
        }
        // A fixed pseudo-random walk over characters the repairs care about.
        let alphabet: Vec<char> =
            "{}[]\"'“”:,#/*\\ \n\tTrueNone-+.e0123456789ab```é🎉<think></think>".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(state % 48) {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                text.push(alphabet[(state >> 33) as usize % alphabet.len()]);
            }
            let _ = extract_json(&text);
            let code = extract_code(&text);
            assert!(code.ends_with('\n') && !code.ends_with("\n\n"), "{text:?} -> {code:?}");
        }
        let deep = "[".repeat(5000);
        assert!(extract_json(&deep).is_err());
        let lone_quotes = ["\"", "'", "“", "{\"", "{'", "[“", "{\"a\":\"\\", "```", "```json"];
        for text in lone_quotes {
            let _ = extract_json(text);
            let _ = extract_code(text);
        }
    }

    // --- extract_code ---

    #[test]
    fn fenced_python() {
        let text = "Here is the script:\n\n```python\nimport csv\n\nprint(1)\n```\n\nIt prints 1.";
        assert_eq!(extract_code(text), "import csv\n\nprint(1)\n");
        let short = "```py\nprint(2)\n```";
        assert_eq!(extract_code(short), "print(2)\n");
    }

    #[test]
    fn longest_fence_wins() {
        let text = "Install:\n```\npip install x\n```\nScript:\n```python\nimport x\nx.run()\nprint('done')\n```\n\
                    Output:\n```\nok\n```";
        assert_eq!(extract_code(text), "import x\nx.run()\nprint('done')\n");
    }

    #[test]
    fn python_fences_beat_longer_other_fences() {
        let text = "```python\nprint(1)\n```\n```text\na much longer sample of the output\nover lines\n```";
        assert_eq!(extract_code(text), "print(1)\n");
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        let text = "Script:\n```python\nimport os\nprint(os.getcwd())\n";
        assert_eq!(extract_code(text), "import os\nprint(os.getcwd())\n");
    }

    #[test]
    fn a_closing_fence_without_opener() {
        assert_eq!(extract_code("import os\nprint(1)\n```"), "import os\nprint(1)\n");
        let text = "import os\nprint(1)\n```\n\nThis prints one.\n";
        assert_eq!(extract_code(text), "import os\nprint(1)\n");
        // A heading before a bare fence does not make the fence a closer.
        let text = "# Solution\n```\nimport os\nprint(1)\n```\n";
        assert_eq!(extract_code(text), "import os\nprint(1)\n");
    }

    #[test]
    fn no_fence_prose_is_stripped() {
        let text = "Here is the script:\n\nimport csv\n\nrows = load()\nfor row in rows:\n    print(row)\n\n\
                    This script computes the total per region.\nLet me know if you need changes!\n";
        assert_eq!(extract_code(text), "import csv\n\nrows = load()\nfor row in rows:\n    print(row)\n");
    }

    #[test]
    fn crlf_input() {
        let fenced = "Script:\r\n```python\r\nimport os\r\nprint(1)\r\n```\r\n";
        assert_eq!(extract_code(fenced), "import os\nprint(1)\n");
        let bare = "Here is the script:\r\nx = 1\r\nprint(x)\r\nThis prints one.\r\n";
        assert_eq!(extract_code(bare), "x = 1\nprint(x)\n");
    }

    #[test]
    fn pure_code_is_unchanged() {
        let code = "#!/usr/bin/env python3\n\"\"\"Totals.\"\"\"\nimport csv\n\n\nclass Row:\n    pass\n\n\n\
                    def main():\n    total = 0\n    return total\n\n\nif __name__ == \"__main__\":\n    main()";
        assert_eq!(extract_code(code), format!("{code}\n"));
        assert_eq!(extract_code("x = 1\n\n\n"), "x = 1\n");
    }

    #[test]
    fn bare_expression_lines_are_kept() {
        let text = "Use this:\nrows = fetch()\nresult(rows)\nThis script prints the result.";
        assert_eq!(extract_code(text), "rows = fetch()\nresult(rows)\n");
        let closing = "data = dict(\n    a=1,\n)\nThe dictionary holds one key.";
        assert_eq!(extract_code(closing), "data = dict(\n    a=1,\n)\n");
    }

    #[test]
    fn prose_that_resembles_code_is_not_code() {
        for line in
            ["Here is the script:", "import the file first.", "if you need more:", "for example:", "Result (in rows):"]
        {
            assert!(!looks_like_code(line), "{line}");
        }
        for line in [
            "import pandas as pd, os",
            "from . import x",
            "for row in rows:",
            "if ok:",
            "a, b = 1, 2",
            "x += 1",
            "@dataclass",
            "obj.method(1)",
            "async def f():",
        ] {
            assert!(looks_like_code(line), "{line}");
        }
    }

    #[test]
    fn code_after_reasoning_and_indented_fences() {
        let text = "<think>```python\nprint('a long draft that is longer')\n```</think>\n1. Run:\n   ```python\n   print(1)\n   if x:\n       y()\n   ```";
        assert_eq!(extract_code(text), "print(1)\nif x:\n    y()\n");
    }

    #[test]
    fn text_without_code_is_returned_whole() {
        assert_eq!(extract_code("I cannot do that.\n"), "I cannot do that.\n");
        assert_eq!(extract_code(""), "\n");
    }
}
