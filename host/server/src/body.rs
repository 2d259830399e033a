//! Request bodies: JSON parsed with the path of whatever is wrong, so that a
//! 400 says `items[3].confidence`, not "line 1 column 214".

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed};

use super::error::ApiError;

/// Parses `bytes` as JSON into `T`, naming the failing field by its path.
/// The body is read straight into `T`, never into a JSON tree first: a
/// batch of items costs one pass and no map per object.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_with(bytes, PhantomData::<T>)
}

/// Parses `bytes` like [`parse`], through `seed`: for a reader that needs
/// state of its own, such as a bound on how many items it takes.
pub fn parse_with<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
) -> Result<S::Value, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let parsed = seed
        .deserialize(serde_path_to_error::Deserializer::new(
            &mut json, &mut track,
        ))
        .map_err(|error| wrong_shape(serde_path_to_error::Error::new(track.path(), error)))?;
    json.end().map_err(not_json)?;
    Ok(parsed)
}

/// Parses `bytes` like [`parse`], except that an empty body (or only
/// whitespace) is `T::default()`: for actions whose body is optional.
pub fn parse_optional<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(bytes)
    }
}

fn not_json(error: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("the body is not valid JSON: {error}"))
}

/// Broken JSON is a bad request; well-formed JSON of the wrong shape names
/// the field, by its path (`[3].confidence` in a batch).
fn wrong_shape(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    if !error.inner().is_data() {
        return not_json(error.into_inner());
    }
    let path = error.path().to_string();
    let inner = error.into_inner();
    // The position says nothing the path does not, for a body on one line.
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let text = inner.to_string();
    let message = text.strip_suffix(&position).unwrap_or(&text);
    // A missing field has no path of its own: serde stops at its parent
    // and names it in the message.
    let mut segments: Vec<&str> = Vec::with_capacity(2);
    if !path.is_empty() && path != "." {
        segments.push(&path);
    }
    if let Some(missing) = missing_field(message) {
        segments.push(missing);
    }
    let field = segments.join(".");
    if field.is_empty() {
        ApiError::bad_request(message.to_string())
    } else {
        ApiError::invalid_field(field.clone(), format!("`{field}`: {message}"))
    }
}

/// The field serde reports as missing, from its message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        nested: Nested,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        score: f64,
    }

    #[test]
    fn a_wrong_type_is_reported_by_its_path() {
        let error = parse::<Shape>(br#"{"name": "x", "nested": {"score": "high"}}"#).unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("nested.score"), "{text}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = parse::<Shape>(br#"{"nested": {}, "name": "x"}"#).unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("field: Some(\"nested.score\")"), "{text}");
        let error = parse::<Vec<Shape>>(
            br#"[{"name": "a", "nested": {"score": 1}}, {"name": "b", "nested": {"score": 2}},
                 {"nested": {"score": 1}}]"#,
        )
        .unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("field: Some(\"[2].name\")"), "{text}");
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        for broken in [
            &b"{\"name\":"[..],
            b"{\"name\": \"x\", \"nested\": {\"score\": 1}} tail",
        ] {
            let error = parse::<Shape>(broken).unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
            let text = format!("{error:?}");
            assert!(text.contains("not valid JSON"), "{text}");
        }
    }

    #[test]
    fn a_field_given_twice_is_refused_by_name() {
        let error = parse::<Nested>(br#"{"score": 1, "score": 0}"#).unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("duplicate field `score`"), "{text}");
    }

    #[test]
    fn messages_name_the_path_not_the_column() {
        let error = parse::<Shape>(br#"{"name": "x", "nested": {"score": "high"}}"#).unwrap_err();
        let text = format!("{error:?}");
        assert!(!text.contains("column"), "{text}");
    }
}
