//! Text from a guest, made safe to show a person on a terminal (security invariant 6:
//! nothing from the guest reaches a terminal unescaped).
//!
//! A script's logs, its stdout and stderr, its results, its error messages and anything
//! named after them (scenario ids, file names) can carry bytes a terminal obeys rather
//! than shows: `\x1b[2J\x1b[H` clears the screen and lets the script forge a status
//! line, `\r` overwrites what the host printed, OSC sequences set the window title or
//! plant hyperlinks, C1 controls (U+009B is CSI) do the same in one character, and
//! bidi overrides or invisible format characters make text read differently from what
//! it is ("Trojan Source"). Every such character is shown as a visible escape instead:
//!
//! - C0 controls and DEL: `\r`, `\n`, `\t` by name, the others as `\xNN` (ESC is `\x1b`);
//! - C1 controls (U+0080..U+009F), bidi embeddings, overrides, isolates and marks, and the
//!   other invisible format characters (zero-width spaces and joiners, the BOM, tag
//!   characters, line and paragraph separators, Hangul fillers): `\u{XXXX}`.
//!
//! [`escape`] keeps `\n` and `\t` (multi-line text: excerpts, tracebacks, scripts);
//! [`escape_line`] escapes them too (a table cell, a name, anything that must stay on
//! one line). Backslashes are left alone, so escaping is idempotent and ordinary paths
//! and regexes read as they are; a guest that prints the text `\x1b` only shows it.
//!
//! [`sanitize_output`] is the last line of defence at the printer: it escapes the same
//! characters in a whole block of human output except the colour sequences the host
//! itself adds (SGR with colour and weight parameters only), so a guest string that some
//! future code forgets to pass through [`escape`] can at worst change a colour, never
//! move the cursor, clear the screen or hide text.
//!
//! JSON output needs none of this: serde_json writes C0 controls as `\uXXXX`, and the
//! other characters are data a JSON consumer decodes exactly.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control and disguising character except `\n` and `\t` shown as a
/// visible escape. Borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| needs_escape(c) && c != '\n' && c != '\t')
}

/// `text` on one line: like [`escape`], and `\n` and `\t` are escaped too, so a table
/// cell or a name cannot break the layout it is printed in.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_with(text, needs_escape)
}

/// A whole block of human output: like [`escape`], except that the host's own colour
/// sequences (`ESC [ params m` with colour, bold/dim and reset parameters only) pass.
pub fn sanitize_output(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(len) = colour_sequence_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if needs_escape(c) && c != '\n' && c != '\t' {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Whether `c` is a control or a character that disguises text.
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        // C0, DEL and C1 controls.
        '\0'..='\x1f' | '\x7f'..='\u{9f}'
        // Soft hyphen; Arabic, Syriac and Mongolian format characters.
        | '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{890}'..='\u{891}'
        | '\u{8e2}' | '\u{180e}'
        // Hangul fillers: letters that render as nothing.
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
        // Zero-width space, joiners, LRM/RLM; bidi embeddings and overrides (202A..202E);
        // line and paragraph separators; word joiner, invisible operators, bidi isolates
        // (2066..2069) and the deprecated format characters.
        | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        // BOM / zero-width no-break space; interlinear annotations.
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        // Format characters outside the BMP, and the invisible tag characters.
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}'
    )
}

fn escape_with(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    let Some(first) = text.find(&escape) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0'..='\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        _ => {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
}

/// The length of the colour sequence `text` starts with, if it is one the host makes:
/// `ESC [` then `;`-separated parameters from reset (0), bold (1), dim (2), normal (22),
/// the 8 + 8 foreground and background colours, their defaults (39, 49) and the
/// 256-colour forms `38;5;N` / `48;5;N`, then `m`. Nothing that moves the cursor,
/// erases, conceals or blinks.
fn colour_sequence_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\x1b[")?;
    let end = body.find('m')?;
    let params = &body[..end];
    if params.len() > 32 || !params.bytes().all(|b| b.is_ascii_digit() || b == b';') {
        return None;
    }
    let mut numbers = params.split(';').map(|p| if p.is_empty() { Some(0) } else { p.parse::<u16>().ok() });
    while let Some(n) = numbers.next() {
        match n? {
            0 | 1 | 2 | 22 | 30..=37 | 39 | 40..=47 | 49 | 90..=97 | 100..=107 => {}
            38 | 48 => {
                if numbers.next()? != Some(5) || numbers.next()?.is_none_or(|n| n > 255) {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(2 + end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["", "ok", "DSCR 1.25 · Riverside Galleria ✓ 日本語 émoji 🚀", "C:\\path\\x1b", "a\nb\tc"]
        {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
        assert!(matches!(escape_line("no controls here"), Cow::Borrowed(_)));
        assert!(matches!(sanitize_output("table │ cell\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn c0_controls_and_del_become_visible() {
        assert_eq!(escape("\x1b[2J\x1b[Hstatus: ok"), "\\x1b[2J\\x1b[Hstatus: ok");
        assert_eq!(escape("done\rforged"), "done\\rforged");
        assert_eq!(
            escape("bell\x07 nul\0 bs\x08 ff\x0c vt\x0b del\x7f"),
            "bell\\x07 nul\\x00 bs\\x08 ff\\x0c vt\\x0b del\\x7f"
        );
        assert_eq!(escape("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        for c in (0u8..0x20).chain([0x7f]).map(char::from) {
            let escaped = escape_line(&c.to_string()).into_owned();
            assert!(escaped.starts_with('\\') && escaped.chars().all(|c| c.is_ascii_graphic()), "{c:?} → {escaped}");
        }
    }

    #[test]
    fn newlines_and_tabs_stay_in_text_but_not_on_one_line() {
        assert_eq!(escape("a\n\tb\r\n"), "a\n\tb\\r\n");
        assert_eq!(escape_line("a\n\tb\r\n"), "a\\n\\tb\\r\\n");
    }

    #[test]
    fn c1_controls_become_visible() {
        assert_eq!(escape("\u{9b}2J csi"), "\\u{009b}2J csi");
        assert_eq!(escape("\u{85}nel \u{80} \u{9f}"), "\\u{0085}nel \\u{0080} \\u{009f}");
        for c in (0x80u32..=0x9f).filter_map(char::from_u32) {
            assert!(needs_escape(c), "{c:?}");
        }
        // The first printable Latin-1 characters are text.
        assert_eq!(escape("\u{a0}é"), "\u{a0}é");
    }

    #[test]
    fn bidi_and_invisible_format_characters_become_visible() {
        assert_eq!(escape("user\u{202e}gpj.exe"), "user\\u{202e}gpj.exe");
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            assert!(needs_escape(c), "bidi {c:?}");
        }
        for c in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{61c}', '\u{2060}', '\u{feff}'] {
            assert!(needs_escape(c), "format {c:?}");
        }
        for c in ['\u{ad}', '\u{2028}', '\u{2029}', '\u{e0041}', '\u{e0001}', '\u{3164}', '\u{fff9}'] {
            assert!(needs_escape(c), "invisible {c:?}");
        }
        assert_eq!(escape_line("ok\u{2066}x\u{2069}"), "ok\\u{2066}x\\u{2069}");
    }

    #[test]
    fn escaping_is_idempotent_and_leaves_no_controls() {
        let hostile = "\x1b[31mred\x1b[0m\r\n\x07\u{9b}1;1H\u{202e}\u{2067}\t\u{200b}";
        let once = escape(hostile).into_owned();
        assert_eq!(escape(&once), once);
        assert!(once.chars().all(|c| !needs_escape(c) || c == '\n' || c == '\t'), "{once:?}");
        let line = escape_line(hostile).into_owned();
        assert!(line.chars().all(|c| !needs_escape(c)), "{line:?}");
        assert_eq!(sanitize_output(&once), once);
    }

    #[test]
    fn output_keeps_host_colours_only() {
        let host = "\x1b[32m✓\x1b[0m run \x1b[38;5;10mok\x1b[39m \x1b[1;31mfailed\x1b[m\n";
        assert_eq!(sanitize_output(host), host);
        // Cursor movement, erasing, concealment, OSC and broken sequences are escaped.
        assert_eq!(sanitize_output("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
        assert_eq!(sanitize_output("\x1b[8mhidden\x1b[0m"), "\\x1b[8mhidden\x1b[0m");
        assert_eq!(sanitize_output("\x1b[38;2;0;0;0mx"), "\\x1b[38;2;0;0;0mx");
        assert_eq!(sanitize_output("\x1b]8;;http://x\x07"), "\\x1b]8;;http://x\\x07");
        assert_eq!(sanitize_output("\x1b[31"), "\\x1b[31");
        assert_eq!(sanitize_output("a\rb\u{9b}c\u{202e}"), "a\\rb\\u{009b}c\\u{202e}");
    }
}
