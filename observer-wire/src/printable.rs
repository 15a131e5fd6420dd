//! Text from the wire or from a file shown to a person: every character that a terminal would
//! act on instead of print is escaped, the way git and ls quote odd file names. An SNI, an ALPN
//! name, a process name or an object name can then neither erase a row, move the cursor, split a
//! line nor reorder what follows (bidirectional overrides). JSON output needs none of this: its
//! encoder escapes control characters already.

use std::fmt;

/// `text` as it may be written to a terminal: `\n`, `\r`, `\t`, `\\`, `\xNN` for the other C0
/// controls and DEL, `\u{NNNN}` for C1 controls and invisible or direction-changing characters.
/// Printable text (any script) is unchanged.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in self.0.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            f.write_str(&self.0[plain..at])?;
            plain = at + c.len_utf8();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c if u32::from(c) < 0x80 => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "\\u{{{:04x}}}", u32::from(c))?,
            }
        }
        f.write_str(&self.0[plain..])
    }
}

/// `text` escaped, as an owned string (for padding and truncating to a column).
pub fn escaped(text: &str) -> String {
    Escaped(text).to_string()
}

/// Characters a terminal does not simply print: controls, the escape character itself (so an
/// escaped text is unambiguous), and format characters that are invisible or change direction.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c,
            '\u{00ad}'                      // soft hyphen
            | '\u{061c}'                    // Arabic letter mark
            | '\u{115f}' | '\u{1160}'       // Hangul fillers
            | '\u{180e}'                    // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'       // zero width, LRM, RLM
            | '\u{2028}'..='\u{202e}'       // line/paragraph separators, embeddings, overrides
            | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, isolates
            | '\u{3164}' | '\u{ffa0}'       // Hangul fillers
            | '\u{feff}'                    // byte order mark
            | '\u{fff9}'..='\u{fffb}'       // interlinear annotations
            | '\u{e0000}'..='\u{e007f}'     // tags
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_characters_are_escaped() {
        assert_eq!(escaped("api.example.com"), "api.example.com");
        assert_eq!(escaped("grüße.例え.テスト"), "grüße.例え.テスト");
        assert_eq!(escaped("a\x1b[1A\x1b[2Kmtls"), "a\\x1b[1A\\x1b[2Kmtls");
        assert_eq!(escaped("row\nsplit\r\t"), "row\\nsplit\\r\\t");
        assert_eq!(escaped("\x00\x7f\u{9b}"), "\\x00\\x7f\\u{009b}");
        assert_eq!(escaped("evil\u{202e}txt.exe\u{200b}"), "evil\\u{202e}txt.exe\\u{200b}");
        assert_eq!(escaped("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn nothing_escaped_contains_a_control_character() {
        let all: String = (0..0x3000u32).filter_map(char::from_u32).collect();
        let out = escaped(&all);
        assert!(!out.chars().any(|c| c.is_control() || needs_escape(c) && c != '\\'), "{out:?}");
    }
}
