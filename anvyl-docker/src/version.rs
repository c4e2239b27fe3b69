//! Which Docker Engine API version anvyl speaks, and that every request
//! really carries it. anvyl prefers API 1.41 — Docker 20.10's, the
//! semantics its calls were written and tested against — and speaks the
//! engine's minimum when that is higher (Docker 29 refuses everything
//! below 1.44). A connection first pings at 1.41; only when the engine
//! refuses that does one unversioned `GET /version` give its range. A range
//! outside [`OLDEST`, `NEWEST`] is an error naming both sides.
//!
//! The version goes into each request's path by a request modifier, not by
//! trusting the client library: bollard 0.21.1 drops the `/v1.41` prefix it
//! is configured with (its URL join replaces the path), and a later bollard
//! restores it. Either way the path that reaches the engine is the one
//! chosen here; a conformance test proves the engine sees it.

use bollard::{BollardRequest, ClientVersion};

/// The version anvyl prefers.
pub const PREFERRED: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// The oldest engine API anvyl works with (Docker 20.10).
pub const OLDEST: ClientVersion = PREFERRED;

/// The newest API anvyl will speak when an engine's minimum forces it up:
/// what the client library's models describe (bollard 0.21: 1.51).
pub const NEWEST: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 51,
};

/// `"1.44"` as a version.
pub fn parse(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.trim().split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

fn key(v: &ClientVersion) -> (usize, usize) {
    (v.major_version, v.minor_version)
}

/// The version to speak with an engine whose API spans `min..=max` (an
/// engine that reports no minimum accepts anything up to its maximum).
pub fn choose(max: &ClientVersion, min: Option<&ClientVersion>) -> Result<ClientVersion, String> {
    let show = |v: &ClientVersion| format!("{}.{}", v.major_version, v.minor_version);
    if key(max) < key(&OLDEST) {
        return Err(format!(
            "the engine speaks Docker API up to {}, older than the {} anvyl needs (Docker 20.10 or newer)",
            show(max),
            show(&OLDEST)
        ));
    }
    let floor = min
        .filter(|m| key(m) > key(&PREFERRED))
        .unwrap_or(&PREFERRED);
    if key(floor) > key(&NEWEST) {
        return Err(format!(
            "the engine requires Docker API {} or newer, and anvyl speaks {} to {}",
            show(floor),
            show(&OLDEST),
            show(&NEWEST)
        ));
    }
    Ok(ClientVersion {
        major_version: floor.major_version,
        minor_version: floor.minor_version,
    })
}

/// `request` with its path carrying exactly `version` (`/v1.44/…`), or no
/// version at all (`None`: the engine's own `/version` and `/_ping`).
pub fn pin(mut request: BollardRequest, version: Option<&ClientVersion>) -> BollardRequest {
    let uri = request.uri().clone();
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let bare = strip(path_and_query);
    let path = match version {
        Some(v) => format!("/v{}.{}{bare}", v.major_version, v.minor_version),
        None => bare.to_string(),
    };
    let mut parts = uri.into_parts();
    match path.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return request,
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// `/v1.41/containers/json` → `/containers/json`.
fn strip(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    if parse(&rest[..end]).is_some() {
        &rest[end..]
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ClientVersion {
        parse(text).unwrap()
    }

    #[test]
    fn the_preferred_version_unless_the_engine_forbids_it() {
        let chosen =
            |max: &str, min: Option<&str>| choose(&v(max), min.map(v).as_ref()).map(|c| key(&c));
        assert_eq!(chosen("1.41", Some("1.12")), Ok((1, 41)));
        assert_eq!(chosen("1.51", Some("1.24")), Ok((1, 41)));
        assert_eq!(chosen("1.52", Some("1.44")), Ok((1, 44)));
        assert_eq!(chosen("1.45", None), Ok((1, 41)));
        let old = chosen("1.40", Some("1.12")).unwrap_err();
        assert!(old.contains("1.40") && old.contains("1.41"), "{old}");
        let new = chosen("1.60", Some("1.55")).unwrap_err();
        assert!(new.contains("1.55") && new.contains("1.51"), "{new}");
    }

    #[test]
    fn the_path_carries_exactly_the_chosen_version() {
        let request = |uri: &str| {
            http::Request::builder()
                .uri(uri)
                .body(bollard::body_full(bytes::Bytes::new()))
                .unwrap()
        };
        let pinned = |uri: &str, version: Option<&str>| {
            pin(request(uri), version.map(v).as_ref()).uri().to_string()
        };
        // bollard 0.21.1: no prefix at all.
        assert_eq!(
            pinned("unix://2f72756e/containers/json?all=true", Some("1.44")),
            "unix://2f72756e/v1.44/containers/json?all=true"
        );
        // A bollard that keeps its own prefix: replaced, not doubled.
        assert_eq!(
            pinned(
                "http://127.0.0.1:2375/v1.41/images/x%3Alatest",
                Some("1.44")
            ),
            "http://127.0.0.1:2375/v1.44/images/x%3Alatest"
        );
        assert_eq!(
            pinned("unix://2f72756e/v1.41/version", None),
            "unix://2f72756e/version"
        );
        // A path that merely starts with `v` is left alone.
        assert_eq!(
            pinned("unix://2f/volumes", Some("1.41")),
            "unix://2f/v1.41/volumes"
        );
    }
}
