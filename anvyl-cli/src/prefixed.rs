//! Several agents' logs on one terminal: each line prefixed with its
//! agent's name (`web | listening on :8080`), as `docker compose logs`
//! does. An engine sends output in chunks that may end mid-line, so each
//! stream keeps its unfinished line until the rest arrives — two agents'
//! halves never share a line.

use std::io::Write;
use std::sync::Mutex;

use anvyl_core::LogStream;

/// One agent's output, written line by line to stdout and stderr.
pub(crate) struct Lines<'a> {
    /// The agent's name, or none to write the output as it comes.
    prefix: Option<&'a str>,
    /// The unfinished line of stdout and of stderr.
    pending: Mutex<[Vec<u8>; 2]>,
}

impl<'a> Lines<'a> {
    /// Lines prefixed with `prefix`; with none, the bytes pass unchanged.
    pub(crate) fn new(prefix: Option<&'a str>) -> Self {
        Self {
            prefix,
            pending: Mutex::new([Vec::new(), Vec::new()]),
        }
    }

    /// Takes a chunk of `stream` and writes the lines it completes.
    pub(crate) fn write(&self, stream: LogStream, bytes: &[u8]) {
        let Some(prefix) = self.prefix else {
            return put(stream, bytes);
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let pending = &mut pending[index(stream)];
        pending.extend_from_slice(bytes);
        if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = pending.drain(..=end).collect();
            put(stream, &prefixed(prefix, &complete));
        }
    }

    /// Writes what is left of an unfinished line, with a newline.
    pub(crate) fn finish(&self) {
        let Some(prefix) = self.prefix else { return };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let rest = std::mem::take(&mut pending[index(stream)]);
            if !rest.is_empty() {
                let mut line = rest;
                line.push(b'\n');
                put(stream, &prefixed(prefix, &line));
            }
        }
    }
}

fn index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// Each line of `lines` (each ended by a newline) after `prefix | `.
fn prefixed(prefix: &str, lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() + 16);
    for line in lines.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b" | ");
        out.extend_from_slice(line);
    }
    out
}

/// Writes to the stream, ignoring a closed pipe (`anvyl … | head`).
fn put(stream: LogStream, bytes: &[u8]) {
    let _ = match stream {
        LogStream::Stdout => std::io::stdout().lock().write_all(bytes),
        LogStream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_split_across_chunks_is_prefixed_once() {
        assert_eq!(prefixed("web", b"a\nb\n"), b"web | a\nweb | b\n");
        let lines = Lines::new(Some("web"));
        lines.write(LogStream::Stdout, b"hal");
        assert_eq!(lines.pending.lock().unwrap()[0], b"hal");
        lines.write(LogStream::Stdout, b"f\nnext");
        assert_eq!(lines.pending.lock().unwrap()[0], b"next");
        lines.finish();
        assert!(lines.pending.lock().unwrap()[0].is_empty());
    }
}
