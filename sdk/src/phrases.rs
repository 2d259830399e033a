//! Named classes of text rules, such as `legal-threat` or `self-harm`.
//!
//! A class fires when any of its rules matches (see [`crate::text::Rule`] for
//! the rule syntax). The text is normalised once and every class is checked
//! against the same words.

use std::fmt;

use crate::text::{Compiled, Index, Rule, RuleError, Vocabulary, Words};

/// A rule of a class that does not parse: which class, which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseError {
    /// The class the rule belongs to.
    pub class: String,
    /// The rule's position in the class's list, from 0.
    pub index: usize,
    /// What is wrong with it.
    pub error: RuleError,
}

impl fmt::Display for PhraseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "class `{}`, rule {}: {}",
            self.class, self.index, self.error
        )
    }
}

impl std::error::Error for PhraseError {}

/// Named classes of rules, matched together.
#[derive(Debug, Clone)]
pub struct PhraseSet {
    /// Every word and prefix of every rule, numbered once.
    vocabulary: Vocabulary,
    /// Each class's rules, as written and compiled against `vocabulary`.
    classes: Vec<(String, Vec<(Rule, Compiled)>)>,
}

impl PhraseSet {
    /// Parses every class's rules. Blank rules are ignored.
    pub fn new<C, P, S>(classes: C) -> Result<Self, PhraseError>
    where
        C: IntoIterator<Item = (S, P)>,
        P: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut vocabulary = Vocabulary::default();
        let mut parsed = Vec::new();
        for (class, rules) in classes {
            let class = class.as_ref().to_string();
            let mut compiled = Vec::new();
            for (index, rule) in rules.into_iter().enumerate() {
                if rule.as_ref().trim().is_empty() {
                    continue;
                }
                let rule = Rule::parse(rule.as_ref()).map_err(|error| PhraseError {
                    class: class.clone(),
                    index,
                    error,
                })?;
                let shared = rule.compile_into(&mut vocabulary);
                compiled.push((rule, shared));
            }
            parsed.push((class, compiled));
        }
        Ok(PhraseSet {
            vocabulary,
            classes: parsed,
        })
    }

    /// The classes with a rule matching `text`, in the order the classes
    /// were given, each once.
    pub fn matching_classes(&self, text: &str) -> Vec<&str> {
        self.matching_classes_in(&Words::of(text))
    }

    /// As [`PhraseSet::matching_classes`], for words already normalised.
    pub fn matching_classes_in(&self, words: &Words) -> Vec<&str> {
        if self.is_empty() {
            return Vec::new();
        }
        let index = Index::new(&self.vocabulary, words);
        self.classes
            .iter()
            .filter(|(_, rules)| rules.iter().any(|(_, rule)| rule.holds(&index)))
            .map(|(class, _)| class.as_str())
            .collect()
    }

    /// The first rule of `class` that matches `text`: what a reviewer asks
    /// when a class fired and they want to know why.
    pub fn matching_rule(&self, class: &str, text: &str) -> Option<&Rule> {
        let index = Index::new(&self.vocabulary, &Words::of(text));
        self.classes
            .iter()
            .find(|(name, _)| name == class)?
            .1
            .iter()
            .find(|(_, compiled)| compiled.holds(&index))
            .map(|(rule, _)| rule)
    }

    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(|(_, rules)| rules.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> PhraseSet {
        PhraseSet::new([
            ("legal", vec!["lawyer", "sue", "legal action"]),
            (
                "deletion",
                vec!["delete my data", "löschen", "delet* NEAR/6 data"],
            ),
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
    fn folds_non_ascii_case_and_accents() {
        assert_eq!(
            set().matching_classes("Bitte LÖSCHEN Sie alles"),
            vec!["deletion"]
        );
        assert_eq!(set().matching_classes("bitte loschen"), vec!["deletion"]);
    }

    #[test]
    fn names_the_rule_that_matched() {
        let text = "Under GDPR I demand that you delete all of my personal data immediately";
        assert_eq!(
            set().matching_rule("deletion", text).map(Rule::source),
            Some("delet* NEAR/6 data")
        );
        assert!(set().matching_rule("legal", text).is_none());
    }

    #[test]
    fn a_bad_rule_names_its_class_and_position() {
        let error =
            PhraseSet::new([("legal", vec!["lawyer", "", "sue NEAR/x court"])]).unwrap_err();
        assert_eq!((error.class.as_str(), error.index), ("legal", 2));
        assert!(
            error.to_string().contains("NEAR takes a distance"),
            "{error}"
        );
    }

    #[test]
    fn empty_set_matches_nothing() {
        let empty = PhraseSet::new(Vec::<(&str, Vec<&str>)>::new()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matching_classes("anything").is_empty());
    }
}
