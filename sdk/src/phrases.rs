//! Case-insensitive, whole-word phrase matching for regulatory and safety triggers.
//!
//! A compliance trigger that fires on "sue" inside "issue" trains operators
//! to ignore it, so matches must start and end on word boundaries. All
//! phrases are matched in one pass with an Aho-Corasick automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Named classes of phrases (for example `legal-threat`), matched together.
#[derive(Debug, Clone)]
pub struct PhraseSet {
    automaton: Option<AhoCorasick>,
    /// For each pattern, the index of its class in `classes`.
    class_of_pattern: Vec<usize>,
    classes: Vec<String>,
}

impl PhraseSet {
    /// Builds the matcher from `(class, phrases)` pairs. Phrases are matched
    /// case-insensitively; empty phrases are ignored.
    pub fn new<C, P, S>(classes: C) -> Result<Self, String>
    where
        C: IntoIterator<Item = (S, P)>,
        P: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names = Vec::new();
        let mut patterns = Vec::new();
        let mut class_of_pattern = Vec::new();
        for (class, phrases) in classes {
            let index = names.len();
            names.push(class.as_ref().to_string());
            for phrase in phrases {
                let phrase = phrase.as_ref().trim().to_lowercase();
                if !phrase.is_empty() {
                    patterns.push(phrase);
                    class_of_pattern.push(index);
                }
            }
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    // A DFA searches a little faster but takes ~100x longer
                    // to build, and a fresh sandbox instance builds this set
                    // for every item: for a few dozen short phrases over
                    // short texts the NFA is the better trade.
                    .kind(Some(AhoCorasickKind::NoncontiguousNFA))
                    .build(&patterns)
                    .map_err(|e| format!("cannot build the phrase matcher: {e}"))?,
            )
        };
        Ok(PhraseSet {
            automaton,
            class_of_pattern,
            classes: names,
        })
    }

    /// The classes with at least one whole-word match in `text`, in the order
    /// the classes were given, each once.
    pub fn matching_classes(&self, text: &str) -> Vec<&str> {
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        // ASCII text is matched as is (the automaton folds ASCII case); other
        // text is lower-cased first, the one allocation this may cost.
        let lowered;
        let haystack = if text.is_ascii() {
            text
        } else {
            lowered = text.to_lowercase();
            &lowered
        };
        let mut hit = vec![false; self.classes.len()];
        for found in automaton.find_overlapping_iter(haystack) {
            if is_whole_word(haystack, found.start(), found.end()) {
                hit[self.class_of_pattern[found.pattern().as_usize()]] = true;
            }
        }
        self.classes
            .iter()
            .zip(hit)
            .filter(|(_, hit)| *hit)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether no phrase is configured.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }
}

fn is_whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> PhraseSet {
        PhraseSet::new([
            ("legal", vec!["lawyer", "sue", "legal action"]),
            ("deletion", vec!["delete my data", "löschen"]),
        ])
        .unwrap()
    }

    #[test]
    fn matches_whole_words_case_insensitively() {
        let set = set();
        assert_eq!(set.matching_classes("I will SUE you"), vec!["legal"]);
        assert_eq!(set.matching_classes("Taking Legal Action."), vec!["legal"]);
        assert!(
            set.matching_classes("there is an issue with my order")
                .is_empty()
        );
        assert!(set.matching_classes("lawyers").is_empty());
        assert_eq!(
            set.matching_classes("my lawyer says: delete my data"),
            vec!["legal", "deletion"]
        );
    }

    #[test]
    fn folds_non_ascii_case() {
        assert_eq!(
            set().matching_classes("Bitte LÖSCHEN Sie alles"),
            vec!["deletion"]
        );
    }

    #[test]
    fn empty_set_matches_nothing() {
        let empty = PhraseSet::new(Vec::<(&str, Vec<&str>)>::new()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matching_classes("anything").is_empty());
    }
}
