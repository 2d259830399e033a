//! `handoff:policy@0.2.0`: typed bindings generated from
//! `wit/0.2.0/policy.wit` (the WIT the Rust SDK builds against), and the
//! item in this version's form: every string of it in one `strings`, the
//! fields spans of it, so lowering an item into a plugin calls the guest's
//! allocator twice (the strings, the attribute list) instead of once per
//! string.

use handoff_model as model;

wasmtime::component::bindgen!({
    path: "../../wit/0.2.0",
    world: "policy",
});

pub(crate) use handoff::policy::types as wit;

/// This contract's version, exactly as a component built for it imports
/// its interfaces.
pub(crate) const VERSION: &str = "0.2.0";

/// Appends strings to one pool and answers where each lies.
struct Pool(String);

impl Pool {
    fn add(&mut self, text: &str) -> wit::Span {
        // An item whose strings pass 4 GiB cannot be lowered in any
        // version (the canonical ABI's lengths are 32 bits): lowering the
        // pool fails as a trap before any span is read, so the clamped
        // values below are never seen.
        let start = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.0.push_str(text);
        wit::Span { start, len }
    }
}

/// The item as this contract passes it to plugins. Built once per
/// evaluation and lent to every plugin of this version.
pub(crate) fn work_item(item: &model::WorkItem) -> wit::WorkItem {
    let capacity = item.id.len()
        + item.kind.len()
        + item.agent.len()
        + item.text.len()
        + item.amount.as_ref().map_or(0, |m| m.currency.len())
        + item.segment.as_ref().map_or(0, String::len)
        + item
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    let mut pool = Pool(String::with_capacity(capacity));
    let id = pool.add(&item.id);
    let kind = pool.add(&item.kind);
    let agent = pool.add(&item.agent);
    let text = pool.add(&item.text);
    let amount = item.amount.as_ref().map(|m| wit::Money {
        minor: m.minor,
        currency: pool.add(&m.currency),
    });
    let segment = item.segment.as_deref().map(|s| pool.add(s));
    let attributes = item
        .attributes
        .iter()
        .map(|(key, value)| wit::Attribute {
            key: pool.add(key),
            value: pool.add(value),
        })
        .collect();
    wit::WorkItem {
        strings: pool.0,
        id,
        kind,
        agent,
        text,
        confidence: item.confidence,
        amount,
        segment,
        attempts: item.attempts,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(strings: &str, span: wit::Span) -> &str {
        &strings[span.start as usize..][..span.len as usize]
    }

    #[test]
    fn every_string_of_the_item_is_its_span_of_the_pool() {
        let item: model::WorkItem = serde_json::from_str(
            r#"{"id":"r-1","kind":"refund","agent":"bøt","text":"naïve ✓ text",
                "confidence":0.5,"amount":{"minor":-5,"currency":"EUR"},
                "segment":"smb","attempts":2,"attributes":{"b":"2","a":"1"}}"#,
        )
        .unwrap();
        let wit = work_item(&item);
        let s = wit.strings.as_str();
        assert_eq!(text(s, wit.id), "r-1");
        assert_eq!(text(s, wit.kind), "refund");
        assert_eq!(text(s, wit.agent), "bøt");
        assert_eq!(text(s, wit.text), "naïve ✓ text");
        let amount = wit.amount.unwrap();
        assert_eq!((amount.minor, text(s, amount.currency)), (-5, "EUR"));
        assert_eq!(text(s, wit.segment.unwrap()), "smb");
        assert_eq!(wit.attempts, 2);
        let attributes: Vec<(&str, &str)> = wit
            .attributes
            .iter()
            .map(|a| (text(s, a.key), text(s, a.value)))
            .collect();
        assert_eq!(attributes, [("a", "1"), ("b", "2")]);
        assert_eq!(s.len(), wit.strings.capacity(), "the pool is sized once");
    }
}
