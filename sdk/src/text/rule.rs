//! One text rule: its syntax, its parse and its evaluation.
//!
//! ```text
//! delete my data                   the words in this order, whole words only
//! delet*                           a word starting with `delet` (3+ letters before `*`)
//! {delete|erase|remove} my data    one of these words at this position
//! delet* NEAR/6 data               both, at most 6 words between them, in either order
//! going to BEFORE/3 regulator      the left, then the right at most 3 words after it
//! sue EXCEPT not going to sue      the left, where no match of the right overlaps it
//! A AND B,  A OR B,  NOT A         combine; NOT binds tightest, then NEAR and BEFORE
//!                                  (left to right), EXCEPT, AND, and OR loosest
//! ( ... )                          group
//! ```
//!
//! Operators are upper case; lower-case `and`, `or`, `not` and `near` are
//! ordinary words, so `not going to sue` is a phrase. `EXCEPT` is the
//! negation to reach for first: `NOT` rules out the whole text, so
//! "I'm not going to sue, but my lawyer will" would escape `sue AND NOT (not
//! going to sue)`, while `sue EXCEPT not going to sue` still sees the lawyer. Words are normalised
//! exactly as texts are (see [`Words`]), so the rule `don't` matches "DON’T".
//! Evaluation is deterministic and linear in the text for phrases, with no
//! backtracking: a rule costs the same on hostile input as on friendly input.

use std::fmt;

use super::index::{Atoms, Index, Vocabulary};
use super::normalize::Words;

/// A rule that cannot be parsed, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {:?}: {}", self.rule, self.reason)
    }
}

impl std::error::Error for RuleError {}

/// A parsed rule, ready to match texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    source: String,
    /// The rule as parsed; its atoms are numbered when it is compiled into
    /// a vocabulary (see [`Rule::compile_into`]).
    expr: Expr<Term>,
}

/// What one word position accepts.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Word(String),
    Prefix(String),
    AnyOf(Vec<Term>),
}

/// A rule compiled against a vocabulary: each phrase position is the set
/// of atoms it accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compiled {
    expr: Expr<Atoms>,
    /// Atoms of which a text must contain at least one for the rule to
    /// hold (see [`Expr::trigger`]). Most texts contain none of a rule's
    /// trigger, so most rules are ruled out by a few lookups instead of
    /// being evaluated.
    trigger: Option<Atoms>,
}

/// A rule's structure, over what one phrase position is: a [`Term`] as
/// parsed, or [`Atoms`] once compiled.
#[derive(Debug, Clone, PartialEq)]
enum Expr<Position> {
    Phrase(Vec<Position>),
    Near(Box<Expr<Position>>, Box<Expr<Position>>, Proximity),
    Except(Box<Expr<Position>>, Box<Expr<Position>>),
    And(Vec<Expr<Position>>),
    Or(Vec<Expr<Position>>),
    Not(Box<Expr<Position>>),
}

/// How close two spans must be, and whether the left must come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proximity {
    within: u32,
    ordered: bool,
}

/// A run of matched words, `start..end`.
type Span = (u32, u32);

/// The longest NEAR distance accepted: beyond this "near" means nothing.
pub const MAX_NEAR: u32 = 50;
/// The shortest prefix before `*`: `a*` would match half of every text.
pub const MIN_PREFIX: usize = 3;
/// The deepest nesting accepted, so a hostile rule cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

impl Rule {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Rule, RuleError> {
        let fail = |reason: String| RuleError {
            rule: source.to_string(),
            reason,
        };
        let tokens = lex(source).map_err(fail)?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            depth: 0,
        };
        let expr = parser.or().map_err(fail)?;
        if let Some(token) = parser.peek() {
            return Err(fail(format!("unexpected {token}")));
        }
        if !expr.requires_something() {
            return Err(fail(
                "a rule must require something: a rule of only NOT matches almost every text; \
                 write `X AND NOT Y`"
                    .into(),
            ));
        }
        Ok(Rule {
            source: source.to_string(),
            expr,
        })
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the rule matches these words. Matching many rules against
    /// one text is cheaper through a [`crate::phrases::PhraseSet`], which
    /// indexes the text once for all of them.
    pub fn matches(&self, words: &Words) -> bool {
        let mut vocabulary = Vocabulary::default();
        let compiled = self.compile_into(&mut vocabulary);
        compiled.holds(&Index::new(&vocabulary, words))
    }

    /// The rule with its atoms numbered in a shared `vocabulary`, to be
    /// matched against an index of that vocabulary.
    pub(crate) fn compile_into(&self, vocabulary: &mut Vocabulary) -> Compiled {
        let expr = self.expr.compile(vocabulary);
        let trigger = self.expr.trigger(vocabulary).map(|(mut atoms, _)| {
            atoms.sort_unstable();
            atoms.dedup();
            atoms
        });
        Compiled { expr, trigger }
    }
}

impl Compiled {
    /// Whether the rule matches the indexed text.
    pub(crate) fn holds(&self, index: &Index) -> bool {
        if let Some(trigger) = &self.trigger
            && !index.contains_any(trigger)
        {
            return false;
        }
        self.expr.holds(index)
    }

    /// As [`Compiled::holds`], evaluating the whole rule whatever its
    /// trigger: what the trigger is tested against.
    #[cfg(test)]
    fn holds_in_full(&self, index: &Index) -> bool {
        self.expr.holds(index)
    }
}

/// How selective a trigger is expected to be; lower is better. Every
/// alternative is another word that can set it off, and short words
/// ("a", "of", "my") occur in most texts.
type Selectivity = u32;

impl Term {
    fn selectivity(&self) -> Selectivity {
        match self {
            Term::Word(w) | Term::Prefix(w) => 32u32.saturating_sub(w.len().min(31) as u32),
            Term::AnyOf(terms) => terms.iter().map(Term::selectivity).sum(),
        }
    }
}

impl Term {
    /// The atoms this term accepts, numbered in `vocabulary`.
    fn atoms(&self, vocabulary: &mut Vocabulary, out: &mut Atoms) {
        match self {
            Term::Word(w) => out.push(vocabulary.word(w)),
            Term::Prefix(p) => out.push(vocabulary.prefix(p)),
            Term::AnyOf(terms) => terms.iter().for_each(|t| t.atoms(vocabulary, out)),
        }
    }
}

impl Expr<Term> {
    /// Atoms of which one must occur in a text for the expression to hold,
    /// with how selective they are; `None` when it can hold with no word
    /// present (`NOT x`). A phrase needs every position, so one position
    /// (the most selective) serves; NEAR and AND need both sides, so the
    /// better side serves; EXCEPT needs what it keeps; OR needs one of its
    /// alternatives, so it takes all of theirs.
    fn trigger(&self, vocabulary: &mut Vocabulary) -> Option<(Atoms, Selectivity)> {
        let best = |candidates: Vec<Option<(Atoms, Selectivity)>>| {
            candidates.into_iter().flatten().min_by_key(|(_, s)| *s)
        };
        match self {
            Expr::Phrase(terms) => {
                let term = terms.iter().min_by_key(|t| t.selectivity())?;
                let mut atoms = Vec::new();
                term.atoms(vocabulary, &mut atoms);
                Some((atoms, term.selectivity()))
            }
            Expr::Near(a, b, _) => best(vec![a.trigger(vocabulary), b.trigger(vocabulary)]),
            Expr::Except(keep, _) => keep.trigger(vocabulary),
            Expr::And(all) => best(all.iter().map(|e| e.trigger(vocabulary)).collect()),
            Expr::Or(any) => {
                let mut atoms = Vec::new();
                let mut selectivity: Selectivity = 0;
                for alternative in any {
                    let (more, s) = alternative.trigger(vocabulary)?;
                    atoms.extend(more);
                    selectivity = selectivity.saturating_add(s);
                }
                Some((atoms, selectivity))
            }
            Expr::Not(_) => None,
        }
    }

    /// The expression with every phrase position's atoms numbered in
    /// `vocabulary`.
    fn compile(&self, vocabulary: &mut Vocabulary) -> Expr<Atoms> {
        let mut boxed = |e: &Expr<Term>| Box::new(e.compile(vocabulary));
        match self {
            Expr::Phrase(terms) => Expr::Phrase(
                terms
                    .iter()
                    .map(|term| {
                        let mut atoms = Vec::new();
                        term.atoms(vocabulary, &mut atoms);
                        atoms.sort_unstable();
                        atoms.dedup();
                        atoms
                    })
                    .collect(),
            ),
            Expr::Near(a, b, proximity) => {
                let a = boxed(a);
                Expr::Near(a, boxed(b), *proximity)
            }
            Expr::Except(a, b) => {
                let a = boxed(a);
                Expr::Except(a, boxed(b))
            }
            Expr::And(all) => Expr::And(all.iter().map(|e| e.compile(vocabulary)).collect()),
            Expr::Or(any) => Expr::Or(any.iter().map(|e| e.compile(vocabulary)).collect()),
            Expr::Not(inner) => Expr::Not(boxed(inner)),
        }
    }
}

impl Expr<Atoms> {
    fn holds(&self, index: &Index) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.holds(index)),
            Expr::Or(any) => any.iter().any(|e| e.holds(index)),
            Expr::Not(inner) => !inner.holds(index),
            Expr::Phrase(_) | Expr::Near(..) | Expr::Except(..) => !self.spans(index).is_empty(),
        }
    }

    /// Where a phrase or proximity expression matches, in order of start.
    /// Only those kinds reach here: the parser rejects NEAR over AND/NOT.
    fn spans(&self, index: &Index) -> Vec<Span> {
        match self {
            Expr::Phrase(positions) => phrase_spans(positions, index),
            Expr::Except(keep, unless) => {
                let mut kept = keep.spans(index);
                if kept.is_empty() {
                    return kept;
                }
                let unless = unless.spans(index);
                kept.retain(|x| !unless.iter().any(|y| x.0 < y.1 && y.0 < x.1));
                kept
            }
            Expr::Near(a, b, Proximity { within, ordered }) => {
                let a = a.spans(index);
                if a.is_empty() {
                    return a;
                }
                let b = b.spans(index);
                let (within, ordered) = (*within, *ordered);
                let longest = b.iter().map(|y| y.1 - y.0).max().unwrap_or(0);
                let mut out = Vec::new();
                for &x in &a {
                    // Only spans of `b` starting in this window can be near
                    // `x`; `b` has one span per start, so the work per `x` is
                    // bounded by the distance, whatever the text.
                    let from = x.0.saturating_sub(within.saturating_add(longest));
                    let to = x.1.saturating_add(within);
                    let first_candidate = b.partition_point(|y| y.0 < from);
                    for &y in b[first_candidate..].iter().take_while(|y| y.0 <= to) {
                        if ordered && y.0 < x.0 {
                            continue;
                        }
                        let (first, second) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                        // Overlapping spans are one place, not two near ones.
                        if second.0 >= first.1 && second.0 - first.1 <= within {
                            out.push((first.0, first.1.max(second.1)));
                        }
                    }
                }
                shortest_per_start(out)
            }
            Expr::Or(any) => shortest_per_start(any.iter().flat_map(|e| e.spans(index)).collect()),
            Expr::And(_) | Expr::Not(_) => Vec::new(),
        }
    }
}

impl<Position> Expr<Position> {
    /// Whether a match needs some word to be present: false for `NOT x`
    /// alone, which would fire on every text without `x`.
    fn requires_something(&self) -> bool {
        match self {
            Expr::Phrase(_) | Expr::Near(..) | Expr::Except(..) => true,
            Expr::And(all) => all.iter().any(Expr::requires_something),
            Expr::Or(any) => any.iter().all(Expr::requires_something),
            Expr::Not(_) => false,
        }
    }

    fn has_spans(&self) -> bool {
        match self {
            Expr::Phrase(_) | Expr::Near(..) | Expr::Except(..) => true,
            Expr::Or(any) => any.iter().all(Expr::has_spans),
            Expr::And(_) | Expr::Not(_) => false,
        }
    }
}

/// Sorts spans by start and keeps the shortest at each start: for whether
/// anything else is near, a shorter span with the same start is never worse.
fn shortest_per_start(mut spans: Vec<Span>) -> Vec<Span> {
    // Often sorted already (one phrase's spans are): then it costs a pass.
    if !spans.is_sorted() {
        spans.sort_unstable();
    }
    spans.dedup_by_key(|span| span.0);
    spans
}

/// Where a phrase matches. Candidates come from its rarest position (in a
/// text full of "my", `my lawyer` is looked for where "lawyer" is), and each
/// is checked against the other positions: the work follows the rarest word.
fn phrase_spans(positions: &[Atoms], index: &Index) -> Vec<Span> {
    let Some((anchor, rarest)) = positions
        .iter()
        .enumerate()
        .min_by_key(|(_, atoms)| index.count(atoms))
    else {
        return Vec::new();
    };
    let (n, len) = (positions.len(), index.len());
    index
        .occurrences(rarest)
        .into_iter()
        .filter_map(|at| (at as usize).checked_sub(anchor))
        .filter(|&start| {
            start + n <= len
                && positions
                    .iter()
                    .enumerate()
                    .all(|(i, atoms)| i == anchor || index.has(start + i, atoms))
        })
        .map(|start| (start as u32, (start + n) as u32))
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Near(u32),
    Before(u32),
    Except,
    Term(Term),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::And => f.write_str("`AND`"),
            Token::Or => f.write_str("`OR`"),
            Token::Not => f.write_str("`NOT`"),
            Token::Near(n) => write!(f, "`NEAR/{n}`"),
            Token::Before(n) => write!(f, "`BEFORE/{n}`"),
            Token::Except => f.write_str("`EXCEPT`"),
            Token::Term(_) => f.write_str("a word"),
        }
    }
}

fn lex(source: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = source;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(tokens);
        };
        match c {
            '(' | ')' => {
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
                rest = &rest[1..];
            }
            '{' => {
                let Some(end) = rest.find('}') else {
                    return Err("`{` is never closed by `}`".into());
                };
                let alternatives = rest[1..end]
                    .split('|')
                    .map(|alt| single_term(alt.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                if alternatives.len() < 2 {
                    return Err(format!(
                        "`{}` offers one word: write it without braces, or separate \
                         alternatives with `|`",
                        &rest[..=end]
                    ));
                }
                tokens.push(Token::Term(Term::AnyOf(alternatives)));
                rest = &rest[end + 1..];
            }
            '}' | '|' => return Err(format!("`{c}` outside `{{...}}`")),
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || "(){}|".contains(c))
                    .unwrap_or(rest.len());
                let chunk = &rest[..end];
                rest = &rest[end..];
                match chunk {
                    "AND" => tokens.push(Token::And),
                    "OR" => tokens.push(Token::Or),
                    "NOT" => tokens.push(Token::Not),
                    "EXCEPT" => tokens.push(Token::Except),
                    _ if chunk.starts_with("NEAR/") || chunk.starts_with("BEFORE/") => {
                        let (name, distance) = chunk.split_once('/').unwrap_or((chunk, ""));
                        let within: u32 = distance.parse().map_err(|_| {
                            format!("`{chunk}`: {name} takes a distance in words, like {name}/5")
                        })?;
                        if within > MAX_NEAR {
                            return Err(format!("`{chunk}`: at most {name}/{MAX_NEAR}"));
                        }
                        tokens.push(if name == "NEAR" {
                            Token::Near(within)
                        } else {
                            Token::Before(within)
                        });
                    }
                    "NEAR" | "BEFORE" => {
                        return Err(format!("{chunk} takes a distance in words, like {chunk}/5"));
                    }
                    _ if chunk.ends_with('*') => tokens.push(Token::Term(single_term(chunk)?)),
                    _ if is_plain_word(chunk) => {
                        tokens.push(Token::Term(Term::Word(chunk.to_ascii_lowercase())));
                    }
                    _ => tokens.extend(
                        Words::of(chunk)
                            .iter()
                            .map(|w| Token::Term(Term::Word(w.to_string()))),
                    ),
                }
            }
        }
    }
}

/// One word or prefix, as an alternative inside braces or a `word*`.
fn single_term(chunk: &str) -> Result<Term, String> {
    let (stem, prefix) = match chunk.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (chunk, false),
    };
    if is_plain_word(stem) {
        let word = stem.to_ascii_lowercase();
        return finish_term(chunk, word, prefix);
    }
    let words = Words::of(stem);
    let word = match (words.len(), words.get(0)) {
        (1, Some(word)) => word.to_string(),
        (0, _) => return Err(format!("`{chunk}` has no letters or digits")),
        _ => {
            return Err(format!(
                "`{chunk}` is several words; a prefix or an alternative is one word"
            ));
        }
    };
    finish_term(chunk, word, prefix)
}

/// A chunk that is one ASCII word as it stands, normalised by lower-casing:
/// most of a rule, parsed without the general normaliser's allocations.
fn is_plain_word(chunk: &str) -> bool {
    !chunk.is_empty() && chunk.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn finish_term(chunk: &str, word: String, prefix: bool) -> Result<Term, String> {
    if !prefix {
        return Ok(Term::Word(word));
    }
    if word.chars().count() < MIN_PREFIX {
        return Err(format!(
            "`{chunk}`: a prefix needs at least {MIN_PREFIX} letters before `*`"
        ));
    }
    Ok(Term::Prefix(word))
}

/// Span operators join expressions that say where they match.
fn check_spans(operator: &Token, left: &Expr<Term>, right: &Expr<Term>) -> Result<(), String> {
    if left.has_spans() && right.has_spans() {
        Ok(())
    } else {
        Err(format!(
            "{operator} joins phrases (or groups of phrases joined by OR), not AND or NOT"
        ))
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr<Term>, String> {
        let mut any = vec![self.and()?];
        while self.eat(&Token::Or) {
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        })
    }

    fn and(&mut self) -> Result<Expr<Term>, String> {
        let mut all = vec![self.unary()?];
        while self.eat(&Token::And) {
            all.push(self.unary()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn unary(&mut self) -> Result<Expr<Term>, String> {
        if self.eat(&Token::Not) {
            // Each NOT nests too: a chain of them must not exhaust the stack.
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} groups"));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.except()
    }

    fn except(&mut self) -> Result<Expr<Term>, String> {
        let mut left = self.near()?;
        while self.eat(&Token::Except) {
            let right = self.near()?;
            check_spans(&Token::Except, &left, &right)?;
            left = Expr::Except(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn near(&mut self) -> Result<Expr<Term>, String> {
        let mut left = self.primary()?;
        loop {
            let (operator, proximity) = match self.peek() {
                Some(token @ Token::Near(within)) => (
                    token.clone(),
                    Proximity {
                        within: *within,
                        ordered: false,
                    },
                ),
                Some(token @ Token::Before(within)) => (
                    token.clone(),
                    Proximity {
                        within: *within,
                        ordered: true,
                    },
                ),
                _ => break,
            };
            self.at += 1;
            let right = self.primary()?;
            check_spans(&operator, &left, &right)?;
            left = Expr::Near(Box::new(left), Box::new(right), proximity);
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr<Term>, String> {
        if self.eat(&Token::Open) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} groups"));
            }
            let inner = self.or()?;
            if !self.eat(&Token::Close) {
                return Err("`(` is never closed by `)`".into());
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let mut terms = Vec::new();
        while let Some(Token::Term(term)) = self.peek() {
            terms.push(term.clone());
            self.at += 1;
        }
        if terms.is_empty() {
            return Err(match self.peek() {
                Some(token) => format!("expected a word or `(`, found {token}"),
                None => "expected a word or `(` at the end".into(),
            });
        }
        Ok(Expr::Phrase(terms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(rule: &str, text: &str) -> bool {
        Rule::parse(rule).unwrap().matches(&Words::of(text))
    }

    #[test]
    fn phrases_match_whole_words_in_order() {
        assert!(hits("delete my data", "Please, DELETE my data."));
        assert!(!hits("delete my data", "my data: delete"));
        assert!(!hits("sue", "there is an issue"));
        assert!(!hits("lawyer", "lawyers"));
        assert!(hits("self-harm", "thoughts of self harm"));
    }

    #[test]
    fn prefixes_and_alternatives() {
        assert!(hits("delet*", "the deletion of"));
        assert!(!hits("delet*", "undelete"));
        assert!(hits("{erase|wipe} my account", "wipe my account"));
        assert!(hits("{sue|sui*} you", "suing you"));
        assert!(!hits("{erase|wipe} my account", "close my account"));
    }

    #[test]
    fn proximity_counts_the_words_between_either_way() {
        let rule = "delet* NEAR/6 data";
        assert!(hits(
            rule,
            "Under GDPR I demand that you delete all of my personal data immediately"
        ));
        assert!(hits(rule, "my data, all of it: delete it"));
        assert!(hits(rule, "delete data"));
        // Seven words between: too far.
        assert!(!hits(rule, "delete the one two three four five six data"));
        assert!(hits("delete NEAR/0 data", "delete data"));
        assert!(!hits("data NEAR/3 data", "data"));
        assert!(hits("data NEAR/3 data", "data and data"));
    }

    #[test]
    fn before_keeps_the_order() {
        let rule = "{going|taking} to BEFORE/3 regulator";
        assert!(hits(rule, "I'm going to the state regulator"));
        assert!(!hits(rule, "the regulator is going to"));
        assert!(!hits(rule, "going to one two three four regulator"));
    }

    #[test]
    fn except_drops_only_the_overlapping_matches() {
        let rule = "suicid* EXCEPT suicide {squad|prevention}";
        assert!(!hits(rule, "I watched Suicide Squad"));
        assert!(hits(
            rule,
            "I'm suicidal. Is there a suicide prevention line?"
        ));
        let rule = "sue EXCEPT not going to sue";
        assert!(!hits(rule, "I'm not going to sue"));
        assert!(hits(rule, "I'm not going to sue now, but later I will sue"));
        // EXCEPT binds looser than NEAR: the exception is the whole right side.
        let rule = "delet* NEAR/4 account EXCEPT {dont|not} NEAR/1 delet*";
        assert!(!hits(rule, "please don't delete my account"));
        assert!(hits(rule, "please delete my account"));
    }

    #[test]
    fn near_chains_and_takes_or_groups() {
        let rule = "(delete OR erase) NEAR/3 {my|our} NEAR/3 (data OR account)";
        assert!(hits(rule, "please erase all my account"));
        assert!(!hits(rule, "please erase the account"));
    }

    #[test]
    fn boolean_operators_with_precedence() {
        assert!(hits("lawyer AND sue", "my lawyer will sue"));
        assert!(!hits("lawyer AND sue", "my lawyer"));
        assert!(hits("lawyer OR sue AND court", "my lawyer"));
        assert!(hits("sue AND NOT {not|never} NEAR/2 sue", "I will sue"));
        assert!(!hits(
            "sue AND NOT {not|never} NEAR/2 sue",
            "I will not sue"
        ));
        assert!(hits(
            "kill myself AND NOT laughing",
            "I want to kill myself"
        ));
        assert!(!hits(
            "kill myself AND NOT laughing",
            "I could kill myself laughing"
        ));
    }

    /// The trigger only skips work: on every rule of every shape and every
    /// text below, a rule ruled out by its trigger is one that does not hold.
    #[test]
    fn triggers_never_change_an_answer() {
        let rules = [
            "lawyer",
            "my lawyer",
            "sue* OR court",
            "delet* NEAR/3 {data|account}",
            "jump* BEFORE/3 {train|bridge}",
            "suicid* EXCEPT suicide {squad|prevention}",
            "lawyer AND sue",
            "sue AND NOT {not|never} NEAR/2 sue",
            "(kill myself OR end it) EXCEPT kill myself laugh*",
            "NOT refund AND (court OR lawyer)",
            "{a|of} {my|the} own",
        ];
        let texts = [
            "",
            "my lawyer will sue you in court",
            "please delete all my data",
            "delete it now",
            "he jumped in front of the train",
            "the suicide squad film",
            "suicidal thoughts",
            "I will not sue",
            "I could kill myself laughing, then end it",
            "a refund, not court",
            "court date, lawyer booked",
            "of the own goal",
            "nothing relevant at all",
        ];
        let mut held = 0;
        for source in rules {
            let rule = Rule::parse(source).unwrap();
            let mut vocabulary = Vocabulary::default();
            let compiled = rule.compile_into(&mut vocabulary);
            assert!(compiled.trigger.is_some(), "{source}: a rule has a trigger");
            for text in texts {
                let index = Index::new(&vocabulary, &Words::of(text));
                let fast = compiled.holds(&index);
                assert_eq!(
                    fast,
                    compiled.holds_in_full(&index),
                    "{source:?} on {text:?}"
                );
                held += usize::from(fast);
            }
        }
        assert!(held >= rules.len(), "the cases match something: {held}");
    }

    #[test]
    fn triggers_pick_the_rarer_word_of_a_phrase() {
        let mut vocabulary = Vocabulary::default();
        let compiled = Rule::parse("cut myself a")
            .unwrap()
            .compile_into(&mut vocabulary);
        let myself = vocabulary.word("myself");
        assert_eq!(compiled.trigger, Some(vec![myself]));
        let compiled = Rule::parse("lawyer OR sue* OR NOT x AND court")
            .unwrap()
            .compile_into(&mut vocabulary);
        assert_eq!(
            compiled.trigger.map(|t| t.len()),
            Some(3),
            "one atom from each alternative"
        );
    }

    #[test]
    fn proximity_stays_bounded_on_hostile_text() {
        // Every word matches both sides: the pairs are quadratic, the work
        // per span is not.
        let text = "delete data ".repeat(20_000);
        assert!(hits("delet* NEAR/50 data NEAR/50 delete", &text));
        let words = Words::of(&text);
        assert_eq!(words.len(), 40_000);
    }

    #[test]
    fn lower_case_operators_are_words() {
        assert!(hits("not going to sue", "I'm not going to sue"));
        assert!(!hits("not going to sue", "going to sue"));
        assert!(hits("near", "near"));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let reason = |rule: &str| Rule::parse(rule).unwrap_err().reason;
        assert!(reason("").contains("expected a word"));
        assert!(reason("a NEAR b").contains("distance"));
        assert!(reason("a NEAR/x b").contains("distance"));
        assert!(reason("a NEAR/99 b").contains("at most"));
        assert!(reason("de*").contains("at least 3"));
        assert!(reason("{one}").contains("one word"));
        assert!(reason("{a b|c}").contains("several words"));
        assert!(reason("{a|b").contains("never closed"));
        assert!(reason("(a OR b").contains("never closed"));
        assert!(reason("a )").contains("unexpected"));
        assert!(reason("NOT sue").contains("must require something"));
        assert!(reason("a OR NOT sue").contains("must require something"));
        assert!(Rule::parse("a AND NOT sue").is_ok());
        assert!(reason("(a AND b) NEAR/2 c").contains("`NEAR/2` joins phrases"));
        assert!(reason("a EXCEPT (b AND c)").contains("`EXCEPT` joins phrases"));
        assert!(reason("a BEFORE b").contains("BEFORE takes a distance"));
        assert!(reason("a AND").contains("at the end"));
        assert!(reason(&"(".repeat(40)).contains("nested deeper"));
        assert!(reason(&format!("{}x", "NOT ".repeat(40_000))).contains("nested deeper"));
    }

    #[test]
    fn errors_name_the_rule() {
        let error = Rule::parse("x NEAR").unwrap_err();
        assert_eq!(error.rule, "x NEAR");
        assert!(error.to_string().starts_with("rule \"x NEAR\": "));
    }
}
