//! Timing one process: wall time, CPU time (user + system) and peak RSS,
//! read with `wait4` for exactly that child.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// What one run of one command cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Wall-clock seconds.
    pub wall: f64,
    /// User + system CPU seconds of the process and its children.
    pub cpu: f64,
    /// Peak resident set size, MiB.
    pub rss_mib: f64,
}

/// Runs `cmd` (output discarded) and measures it; fails unless it exits 0.
#[allow(
    unsafe_code,
    reason = "wait4(2): the only call that gives a child's rusage"
)]
pub fn measure(cmd: &mut Command) -> Result<Sample> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let began = Instant::now();
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; both pointers are
    // to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = began.elapsed().as_secs_f64();
    if waited != pid {
        bail!(
            "wait4 on {cmd:?} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        bail!("{cmd:?} failed (status {status:#x}): {stderr}");
    }
    Ok(Sample {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

/// Median, minimum and maximum of a series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Stats {
        median,
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_series() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = stats(&[5.0, 1.0]);
        assert_eq!((s.min, s.max), (1.0, 5.0));
    }

    #[test]
    fn a_failing_command_is_an_error_and_a_good_one_is_measured() {
        assert!(measure(&mut Command::new("false")).is_err());
        let sample = measure(Command::new("sleep").arg("0.1")).unwrap();
        assert!(sample.wall >= 0.1 && sample.rss_mib > 0.0, "{sample:?}");
    }
}
