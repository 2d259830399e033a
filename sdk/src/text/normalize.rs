//! Turns text into the words rules are matched against.
//!
//! Rules and texts go through the same normalisation, so a rule written as
//! `don't` matches "DON’T", a rule `löschen` matches "Loschen", and a
//! zero-width space or a soft hyphen slipped into "su\u{200b}e" does not hide
//! the word. Words are maximal runs of letters and digits after:
//! - compatibility decomposition (NFKD: fullwidth letters, ligatures) with
//!   combining marks dropped (accents);
//! - Unicode lower-casing;
//! - apostrophes inside a word removed (`don't` is the one word `dont`);
//! - invisible format characters removed without breaking the word.
//!
//! Everything else (spaces, punctuation, hyphens, emoji) separates words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The normalised words of one text, stored in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    buffer: String,
    /// Byte ranges of each word in `buffer`.
    spans: Vec<(u32, u32)>,
}

impl Words {
    /// Normalises `text` into words.
    pub fn of(text: &str) -> Words {
        let mut words = Words {
            buffer: String::with_capacity(text.len()),
            spans: Vec::with_capacity(text.len() / 5 + 1),
        };
        let mut start: Option<usize> = None;
        let push = |c: char, words: &mut Words, start: &mut Option<usize>| {
            if c.is_alphanumeric() {
                if start.is_none() {
                    *start = Some(words.buffer.len());
                }
                words.buffer.extend(c.to_lowercase());
            } else if is_invisible(c) || (is_apostrophe(c) && start.is_some()) {
                // Joins: neither ends the word.
            } else if let Some(begin) = start.take() {
                words.close(begin);
            }
        };
        if text.is_ascii() {
            words.ascii(text.as_bytes());
            return words;
        } else {
            for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
                push(c, &mut words, &mut start);
            }
        }
        if let Some(begin) = start {
            words.close(begin);
        }
        words
    }

    /// The common case, byte by byte and without Unicode tables: the same
    /// words as the general path gives for ASCII text.
    fn ascii(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            while at < bytes.len() && ASCII[bytes[at] as usize] != LETTER {
                at += 1;
            }
            if at == bytes.len() {
                break;
            }
            let begin = self.buffer.len();
            let mut run = at;
            while at < bytes.len() && ASCII[bytes[at] as usize] != BREAK {
                if ASCII[bytes[at] as usize] == JOIN {
                    self.push_lowered(&bytes[run..at]);
                    run = at + 1;
                }
                at += 1;
            }
            self.push_lowered(&bytes[run..at]);
            self.close(begin);
        }
    }

    /// Appends ASCII letters and digits, lower-cased, in one copy.
    fn push_lowered(&mut self, letters: &[u8]) {
        let from = self.buffer.len();
        // Only ASCII letters and digits reach here, so this is valid UTF-8.
        self.buffer
            .push_str(std::str::from_utf8(letters).unwrap_or_default());
        if let Some(added) = self.buffer.get_mut(from..) {
            added.make_ascii_lowercase();
        }
    }

    fn close(&mut self, begin: usize) {
        // Texts reaching a policy are capped far below 4 GiB by the host.
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans.push((to_u32(begin), to_u32(self.buffer.len())));
    }

    /// How many words there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no word at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The word at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        let (start, end) = *self.spans.get(index)?;
        self.buffer.get(start as usize..end as usize)
    }

    /// The words in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// What an ASCII byte is to a word: a letter or digit, an apostrophe (which
/// joins inside a word), or a break.
const BREAK: u8 = 0;
const LETTER: u8 = 1;
const JOIN: u8 = 2;

static ASCII: [u8; 256] = {
    let mut table = [BREAK; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = LETTER;
        } else if c == b'\'' || c == b'`' {
            table[b] = JOIN;
        }
        b += 1;
    }
    table
};

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{2018}' | '\u{02bc}' | '\u{2032}' | '`'
    )
}

/// Characters that render as nothing: used to split a word invisibly.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        Words::of(text).iter().map(str::to_string).collect()
    }

    #[test]
    fn splits_on_punctuation_and_lowercases() {
        assert_eq!(
            words("Under GDPR, I DEMAND: delete-it now!!"),
            ["under", "gdpr", "i", "demand", "delete", "it", "now"]
        );
        assert!(Words::of("  ... !! ").is_empty());
    }

    #[test]
    fn apostrophes_join_and_curly_ones_too() {
        assert_eq!(words("I don't, I DON’T"), ["i", "dont", "i", "dont"]);
        // A leading quote is punctuation, not part of a word.
        assert_eq!(words("'sue'"), ["sue"]);
    }

    #[test]
    fn folds_accents_width_and_ligatures() {
        assert_eq!(words("Bitte LÖSCHEN"), ["bitte", "loschen"]);
        assert_eq!(words("ＳＵＥ"), ["sue"]);
        assert_eq!(words("ﬁle"), ["file"]);
        assert_eq!(words("café"), ["cafe"]);
    }

    #[test]
    fn invisible_characters_do_not_split_words() {
        assert_eq!(words("su\u{200b}e"), ["sue"]);
        assert_eq!(words("law\u{00ad}yer"), ["lawyer"]);
        assert_eq!(words("\u{feff}suicide"), ["suicide"]);
    }

    #[test]
    fn ascii_and_general_paths_agree() {
        for text in [
            "I don't, 'sue' you!",
            "a''b c'",
            "x1-y2_z3",
            "  ",
            "end.",
            "don`t `x",
        ] {
            // A non-ASCII space at the end sends the text down the general path.
            let general = format!("{text}\u{3000}");
            assert_eq!(words(text), words(&general), "{text:?}");
        }
    }

    #[test]
    fn keeps_digits_and_non_latin_letters() {
        assert_eq!(words("art. 17 GDPR"), ["art", "17", "gdpr"]);
        assert_eq!(words("Удалите мои данные"), ["удалите", "мои", "данные"]);
    }
}
