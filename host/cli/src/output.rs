//! How the commands that decide print an answer: the decision as JSON, one
//! per line, with a `dispatch` field when the host acted on it.

use std::io::Write;

use anyhow::Context;
use handoff_dispatch::Dispatched;
use handoff_model::Decision;
use handoff_pipeline::Answer;
use serde::Serialize;

/// A decision and what dispatch did about it, as one JSON object.
#[derive(Serialize)]
struct DispatchedDecision<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    dispatch: &'a Dispatched,
}

/// Writes `answer` as one line of JSON.
pub fn write_answer(out: &mut impl Write, answer: &Answer) -> anyhow::Result<()> {
    match &answer.dispatched {
        Some(dispatch) => serde_json::to_writer(
            &mut *out,
            &DispatchedDecision {
                decision: &answer.decision,
                dispatch,
            },
        ),
        None => serde_json::to_writer(&mut *out, &answer.decision),
    }
    .context("cannot write a decision")?;
    out.write_all(b"\n").context("cannot write a decision")
}

/// `text` made safe for a terminal: control characters (escape sequences,
/// newlines that would split a table row, NUL) are written escaped, as
/// `\u{1b}`, `\n`, `\0`. Anything an agent, a plugin or a policy file
/// supplied goes through here before it is printed.
pub fn terminal(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// `text` in at most `width` characters.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(terminal("plain · text"), "plain · text");
        assert_eq!(terminal("a\u{1b}[2Jb\nc\0"), "a\\u{1b}[2Jb\\nc\\u{0}");
    }

    #[test]
    fn long_values_are_cut_to_their_column() {
        assert_eq!(fit("auth-limit.exceeded", 24), "auth-limit.exceeded");
        let long = "compliance.disclosure.regulatory-notice-missing";
        let cut = fit(long, 24);
        assert_eq!(cut.chars().count(), 24);
        assert!(cut.ends_with('…') && long.starts_with(cut.trim_end_matches('…')));
    }
}
