//! Durations in the configuration: `stop_timeout = "10s"`,
//! `request_timeout = "2m"`, `settle = "500ms"` — humantime's words, as
//! `--grace` and `--resync` take them — or a bare whole number of seconds,
//! which is what older configurations (and `ANVYL_STOP_TIMEOUT=10`) hold.
//! `settle_ms`, the old spelling of `settle`, stays whole milliseconds: each
//! layer that sets it is read as setting `settle` ([`OldSpellings`]), so a
//! later layer wins whichever of the two spellings either layer used.
//!
//! `humantime-serde` is not used: it reads strings only, so the integers of
//! older configurations would still need a visitor of our own, and that
//! visitor is all `humantime-serde` would do besides calling
//! [`humantime::parse_duration`], which anvyl already depends on.

use std::fmt;
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::de::{self, Unexpected};
use serde::{Deserializer, Serializer};

/// The key and its old spelling.
const SETTLE: &str = "settle";
const SETTLE_MS: &str = "settle_ms";

/// What a duration key accepts, for its error.
const EXAMPLES: &str = "a duration such as \"10s\", \"2m\", \"1h 30m\" or \"500ms\"";

/// A duration key whose bare numbers are seconds: `#[serde(with = "seconds")]`.
pub mod seconds {
    use super::*;

    /// Written as humantime writes it (`2m`), which [`deserialize`] reads back.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    /// Humantime's words, or a whole number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Reads `text` as humantime's words, or as whole seconds when it is only
/// digits (`"10"`, which humantime wants a unit for): the same number
/// unquoted means seconds, and so does `ANVYL_STOP_TIMEOUT=10`.
fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text).ok(),
    }
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{EXAMPLES}, or a whole number of seconds")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    // TOML's integers are signed.
    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::invalid_value(Unexpected::Signed(seconds), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

/// The `settle_ms` a layer could not be read as `settle` with: anything but
/// a whole number. It is refused with what the key takes; a whole number
/// never gets here, [`OldSpellings`] moved it to `settle`.
pub fn refuse_settle_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    struct Refusal;
    impl de::Visitor<'_> for Refusal {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(
                f,
                "a whole number of milliseconds (settle takes durations such as \"500ms\")"
            )
        }
    }
    deserializer.deserialize_any(Refusal)
}

/// A configuration layer in which the old spellings read as the new:
/// `settle_ms = 300` as `settle = "300ms"`. Done per layer, before figment
/// merges it, so that the usual rule — a later layer wins — holds across
/// spellings (`/etc` saying `settle_ms = 300`, the user's file `settle =
/// "2s"`: 2 s). A layer that says both is refused: which would it mean?
pub struct OldSpellings<P>(pub P);

impl<P: Provider> Provider for OldSpellings<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            let Some(old) = dict.get(SETTLE_MS) else {
                continue;
            };
            if dict.contains_key(SETTLE) {
                // Said after the key (`settle_ms`: …) or the variable.
                return Err(figment::Error::from(format!(
                    "the old spelling of {SETTLE}, set here too: keep one of them"
                ))
                .with_path(SETTLE_MS));
            }
            // Anything but a whole number stays, for the `settle_ms` field
            // to refuse with the key the user wrote.
            let milliseconds = (old.to_num())
                .and_then(|n| n.to_u128_lossy())
                .and_then(|n| u64::try_from(n).ok());
            if let Some(ms) = milliseconds {
                dict.remove(SETTLE_MS);
                dict.insert(SETTLE.into(), Value::from(format!("{ms}ms")));
            }
        }
        Ok(data)
    }

    fn profile(&self) -> Option<Profile> {
        self.0.profile()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Keys {
        #[serde(with = "seconds")]
        d: Duration,
    }

    fn read(value: Value) -> Result<Duration, String> {
        let mut dict = Dict::new();
        dict.insert("d".into(), value);
        (Value::from(dict).deserialize::<Keys>())
            .map(|k| k.d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn humantime_words_and_whole_seconds() {
        let cases = [
            (Value::from("10s"), 10_000),
            (Value::from("2m"), 120_000),
            (Value::from("1h 30m"), 5_400_000),
            (Value::from("500ms"), 500),
            (Value::from("0"), 0),
            (Value::from("10"), 10_000),
            (Value::from(10i64), 10_000),
            (Value::from(10u8), 10_000),
            (Value::from(0i64), 0),
        ];
        for (value, ms) in cases {
            let shown = format!("{value:?}");
            assert_eq!(read(value), Ok(Duration::from_millis(ms)), "{shown}");
        }
    }

    #[test]
    fn what_is_not_a_duration_is_refused_with_what_is() {
        for (value, found) in [
            (Value::from("ten"), "string \"ten\""),
            (Value::from("-1"), "string \"-1\""),
            (Value::from(-1i64), "signed int `-1`"),
            (Value::from(1.5f64), "float"),
        ] {
            let err = read(value).unwrap_err();
            assert!(
                err.contains(found)
                    && err.contains("\"10s\", \"2m\"")
                    && err.contains("whole number of seconds"),
                "{err}"
            );
        }
    }

    #[test]
    fn written_as_it_is_read() {
        for d in [
            Duration::ZERO,
            Duration::from_secs(120),
            Duration::from_millis(1500),
        ] {
            let written = humantime::format_duration(d).to_string();
            assert_eq!(read(Value::from(written)), Ok(d));
        }
    }
}
