//! The names enums go by in JSON, on the command line and in the store,
//! derived once (with `strum`) and parsed with one error that lists what
//! would have been accepted.

use strum::VariantArray;

/// An enum whose variants have fixed kebab-case names: declared with
/// [`named_enum!`](crate::named_enum), which derives the names for serde
/// and for `Display`/`FromStr` (strum) from the variants.
pub trait Named: VariantArray + Copy + Into<&'static str> + 'static {
    /// What one value is called in messages, for example `tier`.
    const KIND: &'static str;

    /// The variant's name, as it appears in JSON and on the command line.
    fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A name that is none of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{given}`; expected {expected}")]
pub struct UnknownName {
    /// The kind of thing, for example `tier`.
    pub kind: &'static str,
    /// What was given.
    pub given: String,
    /// Every accepted name, as a list for people (`a, b or c`).
    pub expected: String,
}

/// The error for `given`, which is not a name of `T`: what `EnumString`
/// derives call through `parse_err_fn`.
pub fn unknown<T: Named>(given: &str) -> UnknownName {
    let names: Vec<&str> = T::VARIANTS.iter().map(|v| v.as_str()).collect();
    let expected = match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    UnknownName {
        kind: T::KIND,
        given: given.to_string(),
        expected,
    }
}

/// Declares a fieldless enum whose variants are named in kebab-case the
/// same way everywhere: in JSON (serde), in `Display` and `FromStr`
/// (strum, with [`UnknownName`] listing the choices), and as
/// [`Named::as_str`]. `KIND` names one value in messages. Further derives
/// (`PartialOrd`, `Default`, ...) go in an ordinary `#[derive]` above.
///
/// ```
/// handoff_model::named_enum! {
///     /// A colour.
///     #[derive(Default)]
///     pub enum Colour ("colour") {
///         #[default]
///         Red,
///         DarkBlue,
///     }
/// }
/// assert_eq!(Colour::DarkBlue.to_string(), "dark-blue");
/// assert!("green".parse::<Colour>().unwrap_err().to_string().contains("red or dark-blue"));
/// ```
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize,
            ::strum::Display, ::strum::IntoStaticStr, ::strum::EnumString, ::strum::VariantArray,
        )]
        #[serde(rename_all = "kebab-case")]
        #[strum(
            serialize_all = "kebab-case",
            parse_err_ty = ::handoff_model::UnknownName,
            parse_err_fn = ::handoff_model::unknown::<Self>
        )]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl ::handoff_model::Named for $name {
            const KIND: &'static str = $kind;
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::Tier;

    #[test]
    fn names_parse_and_unknown_ones_list_the_choices() {
        assert_eq!("self-correct".parse::<Tier>(), Ok(Tier::SelfCorrect));
        assert_eq!(Tier::Executive.to_string(), "executive");
        let error = "urgent".parse::<Tier>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown tier `urgent`; expected none, self-correct, operator or executive"
        );
    }
}
