//! Where each word of the rules occurs in one text, found in one pass.
//!
//! Scanning the text once per phrase would cost the number of words times
//! the number of phrase positions in every rule: for the reference rules,
//! milliseconds per kilobyte. Instead every distinct word and prefix the
//! rules use is an *atom*; one pass over the text records, per position,
//! which atoms it matches and, per atom, where it occurs. A phrase then
//! starts only where its first word occurs, so the work follows the
//! matches, not the text.

use rustc_hash::FxHashMap;

use super::normalize::Words;

/// Atom ids, sorted: what one phrase position accepts.
pub(crate) type Atoms = Vec<u32>;

/// Every distinct word and prefix a set of rules uses, each with an id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Vocabulary {
    /// Whole words. Fx hashing: fixed keys (no call for randomness, the
    /// same lookups everywhere) and a few operations per word, where
    /// SipHash costs a hundred; the keys are the rule author's, not an
    /// attacker's, so flooding is not a concern.
    words: FxHashMap<String, u32>,
    /// Prefixes (without `*`), grouped by their first byte: a word is only
    /// checked against the prefixes that start like it.
    prefixes: FxHashMap<u8, Vec<(String, u32)>>,
    count: u32,
}

impl Vocabulary {
    /// The id of a whole word, added if new.
    pub(crate) fn word(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.words.get(word) {
            return id;
        }
        let id = self.next();
        self.words.insert(word.to_string(), id);
        id
    }

    /// The id of a prefix, added if new.
    pub(crate) fn prefix(&mut self, prefix: &str) -> u32 {
        let first = prefix.as_bytes().first().copied().unwrap_or(0);
        if let Some((_, id)) = self
            .prefixes
            .get(&first)
            .and_then(|group| group.iter().find(|(p, _)| p == prefix))
        {
            return *id;
        }
        let id = self.next();
        self.prefixes
            .entry(first)
            .or_default()
            .push((prefix.to_string(), id));
        id
    }

    fn next(&mut self) -> u32 {
        let id = self.count;
        // A rule set's atoms are counted in hundreds, far below u32::MAX.
        self.count = self.count.saturating_add(1);
        id
    }

    fn len(&self) -> u32 {
        self.count
    }

    /// The atoms `word` matches, appended to `out`.
    fn atoms_of(&self, word: &str, out: &mut Vec<u32>) {
        if let Some(&id) = self.words.get(word) {
            out.push(id);
        }
        let Some(first) = word.as_bytes().first() else {
            return;
        };
        for (prefix, id) in self
            .prefixes
            .get(first)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if word.starts_with(prefix.as_str()) {
                out.push(*id);
            }
        }
    }
}

/// One text's words, indexed by the atoms of a vocabulary.
///
/// Only the atoms the text contains take space: a vocabulary has hundreds
/// of atoms and a typical text matches a handful, so a table with a slot
/// per atom would cost more to build than everything the rules then do.
#[derive(Debug)]
pub(crate) struct Index {
    /// For position `i`, its atoms are `atoms[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    atoms: Vec<u32>,
    /// Every `(atom, position)` the text has, sorted: an atom's positions
    /// are one ascending run, found by binary search.
    hits: Vec<(u32, u32)>,
    /// One bit per atom of the vocabulary, set when the text has it: a
    /// rule's trigger is checked with a bit test per atom.
    present: Vec<u64>,
}

impl Index {
    pub(crate) fn new(vocabulary: &Vocabulary, words: &Words) -> Index {
        let mut index = Index {
            starts: Vec::with_capacity(words.len() + 1),
            atoms: Vec::new(),
            hits: Vec::new(),
            present: vec![0; vocabulary.len().div_ceil(64) as usize],
        };
        for (position, word) in words.iter().enumerate() {
            index.starts.push(to_u32(index.atoms.len()));
            let from = index.atoms.len();
            vocabulary.atoms_of(word, &mut index.atoms);
            let position = to_u32(position);
            index
                .hits
                .extend(index.atoms[from..].iter().map(|&atom| (atom, position)));
        }
        index.starts.push(to_u32(index.atoms.len()));
        // Already sorted by position; sorting by atom keeps each atom's
        // positions ascending.
        index.hits.sort_unstable();
        for &(atom, _) in &index.hits {
            if let Some(word) = index.present.get_mut((atom / 64) as usize) {
                *word |= 1 << (atom % 64);
            }
        }
        index
    }

    /// How many words the text has.
    pub(crate) fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether the text contains any of `atoms` anywhere: what rules a text
    /// cannot match are ruled out by.
    pub(crate) fn contains_any(&self, atoms: &[u32]) -> bool {
        atoms.iter().any(|&atom| {
            self.present
                .get((atom / 64) as usize)
                .is_some_and(|word| word & (1 << (atom % 64)) != 0)
        })
    }

    /// Whether the word at `position` matches one of `atoms` (sorted).
    pub(crate) fn has(&self, position: usize, atoms: &[u32]) -> bool {
        let (Some(&start), Some(&end)) = (self.starts.get(position), self.starts.get(position + 1))
        else {
            return false;
        };
        self.atoms
            .get(start as usize..end as usize)
            .unwrap_or_default()
            .iter()
            .any(|atom| atoms.binary_search(atom).is_ok())
    }

    /// How many times `atoms` occur (an upper bound when several match the
    /// same word): what picks the rarest position of a phrase.
    pub(crate) fn count(&self, atoms: &[u32]) -> usize {
        atoms.iter().map(|&atom| self.positions(atom).len()).sum()
    }

    /// Every position matching one of `atoms`, ascending, each once.
    pub(crate) fn occurrences(&self, atoms: &[u32]) -> Vec<u32> {
        let mut lists = atoms
            .iter()
            .map(|&atom| self.positions(atom))
            .filter(|list| !list.is_empty());
        let Some(first) = lists.next() else {
            return Vec::new();
        };
        let mut all: Vec<u32> = first.iter().map(|&(_, at)| at).collect();
        for list in lists {
            all = merge(&all, list);
        }
        all
    }

    /// The run of `hits` for `atom`: its positions, ascending.
    fn positions(&self, atom: u32) -> &[(u32, u32)] {
        let start = self.hits.partition_point(|&(a, _)| a < atom);
        let len = self.hits[start..].partition_point(|&(a, _)| a == atom);
        &self.hits[start..start + len]
    }
}

/// An ascending list and an atom's run of hits as one ascending list,
/// each position once.
fn merge(a: &[u32], b: &[(u32, u32)]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let next = a[i].min(b[j].1);
        i += usize::from(a[i] == next);
        j += usize::from(b[j].1 == next);
        out.push(next);
    }
    out.extend_from_slice(&a[i..]);
    out.extend(b[j..].iter().map(|&(_, at)| at));
    out
}

fn to_u32(n: usize) -> u32 {
    // Texts reaching a policy are capped far below 4 G words by the host.
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_words_and_prefixes_in_one_pass() {
        let mut vocabulary = Vocabulary::default();
        let data = vocabulary.word("data");
        let delet = vocabulary.prefix("delet");
        let del = vocabulary.prefix("del");
        let words = Words::of("delete the data, deleted data; deli");
        let index = Index::new(&vocabulary, &words);
        assert_eq!(index.len(), 6);
        assert_eq!(index.occurrences(&[data]), vec![2, 4]);
        assert_eq!(index.occurrences(&[delet]), vec![0, 3]);
        assert_eq!(index.occurrences(&[del]), vec![0, 3, 5]);
        let mut both = vec![data, delet];
        both.sort_unstable();
        assert_eq!(index.occurrences(&both), vec![0, 2, 3, 4]);
        assert!(index.has(5, &[del]));
        assert!(!index.has(5, &[delet]));
        assert!(!index.has(6, &[del]), "past the end");
        assert!(index.contains_any(&[data]));
        let absent = vocabulary.word("absent");
        assert!(!index.contains_any(&[absent]));
        assert_eq!(index.count(&[absent]), 0);
        assert!(index.occurrences(&[absent]).is_empty());
    }
}
