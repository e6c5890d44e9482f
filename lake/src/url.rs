//! The one reading of a lake URL.

use url::Url;

use crate::LakeError;

/// Parses and normalises a lake location (see the crate docs for the forms):
/// - `file:///abs/dir` or a bare path (relative paths resolve against the current directory) ->
///   `file:///abs/dir/`;
/// - `memory://` -> `memory:///`;
/// - `s3://bucket[/prefix]` -> `s3://bucket[/prefix]/`.
///
/// The result always ends in `/`, so `url.join("events/")` stays under the lake. Rejected with
/// [`LakeError::InvalidUrl`]: an empty location, any other scheme, a `file://` URL naming a host
/// other than `localhost`, an `s3://` URL without a bucket, a query or a fragment. Reads the
/// current directory for relative paths; no other I/O.
pub fn parse_url(location: &str) -> Result<Url, LakeError> {
    let invalid = |reason: &str| LakeError::InvalidUrl { url: location.to_owned(), reason: reason.to_owned() };
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| invalid(&e.to_string()))?
    } else {
        if location.is_empty() {
            return Err(invalid("empty path"));
        }
        let path = std::path::absolute(location).map_err(|e| invalid(&e.to_string()))?;
        Url::from_directory_path(&path).map_err(|()| invalid("not representable as a file:// URL"))?
    };
    match url.scheme() {
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(invalid("a file:// URL must not name a host (use file:///abs/path)"));
            }
        }
        "memory" => {
            if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
                return Err(invalid("a memory lake is just memory://"));
            }
            url = Url::parse("memory:///").map_err(|e| invalid(&e.to_string()))?;
        }
        "s3" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("an s3:// URL needs a bucket (s3://bucket[/prefix])"));
            }
        }
        other => {
            return Err(invalid(&format!(
                "unsupported scheme `{other}` (use file://, a directory path, memory:// or s3://)"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a lake URL has no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls() {
        let ok = [
            ("s3://bucket", "s3://bucket/"),
            ("s3://bucket/", "s3://bucket/"),
            ("s3://bucket/some/prefix", "s3://bucket/some/prefix/"),
            ("file:///tmp/lake", "file:///tmp/lake/"),
            ("file:///tmp/lake/", "file:///tmp/lake/"),
            ("file://localhost/tmp/lake", "file:///tmp/lake/"),
            ("/tmp/lake", "file:///tmp/lake/"),
            ("/tmp/my lake", "file:///tmp/my%20lake/"),
            ("memory://", "memory:///"),
            ("memory:///", "memory:///"),
        ];
        for (input, expected) in ok {
            assert_eq!(parse_url(input).unwrap().as_str(), expected, "{input}");
        }
        let relative = parse_url("lake").unwrap();
        assert_eq!(relative.scheme(), "file");
        assert!(relative.path().ends_with("/lake/"), "{relative}");
        for bad in [
            "",
            "s3://",
            "s3:///nobucket",
            "http://example.com/lake",
            "gs://bucket/x",
            "s3a://bucket/x",
            "memory://name",
            "memory:///x",
            "file://host/tmp",
            "s3://b/p?x=1",
            "file:///tmp/lake#x",
            "not a url://x",
        ] {
            assert!(matches!(parse_url(bad), Err(LakeError::InvalidUrl { .. })), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn lake_url_parsing_never_panics(input in "\\PC{0,40}", scheme in "(s3|file|memory|http)://") {
            for candidate in [input.clone(), format!("{scheme}{input}")] {
                if let Ok(url) = parse_url(&candidate) {
                    proptest::prop_assert!(url.path().ends_with('/'));
                    proptest::prop_assert!(matches!(url.scheme(), "s3" | "file" | "memory"));
                }
            }
        }
    }
}
