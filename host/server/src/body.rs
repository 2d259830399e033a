//! Request bodies: JSON parsed with the path of whatever is wrong, so that a
//! 400 says `items[3].confidence`, not "line 1 column 214".

use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Parses `bytes` as JSON into `T`, naming the failing field by its path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    from_value(value, "")
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

/// Converts an already parsed value, with `prefix` before every path (the
/// position of an item in a batch).
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // A missing field has no path of its own: serde stops at its parent
        // and names it in the message.
        let mut segments: Vec<&str> = [prefix, path.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if let Some(missing) = missing_field(&inner) {
            segments.push(missing);
        }
        let field = segments.join(".");
        if field.is_empty() {
            ApiError::bad_request(inner)
        } else {
            ApiError::invalid_field(field.clone(), format!("`{field}`: {inner}"))
        }
    })
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
        let error =
            from_value::<Shape>(serde_json::json!({"nested": {"score": 1}}), "[2]").unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("field: Some(\"[2].name\")"), "{text}");
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let error = parse::<Shape>(b"{\"name\":").unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}
