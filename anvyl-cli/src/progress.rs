//! Progress on a terminal: a start's status line (one line per phase,
//! replaced, not appended) and a cleanup's determinate bar, n/N in all and
//! per step. Drawn on standard error only when it is a terminal, never in
//! JSON mode or with `-q`; both are the `logging` module's active line, so
//! log lines print above them and no frame is left in the scrollback.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use anvyl_core::pipeline::FleetPlan;
use anvyl_core::{AgentName, Step};
use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress may be drawn: a person is watching standard error.
fn shown(json: bool, quiet: u8) -> bool {
    !json && quiet == 0 && std::io::stderr().is_terminal()
}

/// A spinner showing a start's phase and its latest build line.
pub fn start_line(name: &AgentName, json: bool, quiet: u8) -> Option<ProgressBar> {
    if !shown(json, quiet) {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {wide_msg}").expect("valid template"),
    );
    bar.set_prefix(format!("building {}", name.image_tag()));
    bar.enable_steady_tick(Duration::from_millis(100));
    crate::logging::show_progress(&bar);
    Some(bar)
}

/// The bar of a cleanup's removals; cleared when dropped.
pub struct Removals {
    bar: ProgressBar,
    /// Done and planned, per step in [`Step::ALL`] order.
    counts: Mutex<[(usize, usize); 4]>,
}

impl Removals {
    /// A bar for `plan`, or `None` when nobody would see it.
    pub fn show(plan: &FleetPlan, json: bool, quiet: u8) -> Option<Self> {
        if !shown(json, quiet) {
            return None;
        }
        let counts = Step::ALL.map(|step| (0, plan.plans().map(|p| p.count(step)).sum()));
        let bar = ProgressBar::new(plan.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("[{bar:20}] {pos}/{len} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(steps_line(&counts));
        bar.enable_steady_tick(Duration::from_millis(100));
        crate::logging::show_progress(&bar);
        bar.tick();
        Some(Self {
            bar,
            counts: Mutex::new(counts),
        })
    }

    /// One item of `step` is done, whatever its outcome.
    pub fn done(&self, step: Step) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts[step.index()].0 += 1;
        self.bar.inc(1);
        self.bar.set_message(steps_line(&counts));
    }
}

impl Drop for Removals {
    fn drop(&mut self) {
        crate::logging::hide_progress();
    }
}

/// `containers 2/10 · images 0/12`: the steps that have items, in order,
/// in words short enough for an 80-column terminal.
fn steps_line(counts: &[(usize, usize); 4]) -> String {
    (Step::ALL.iter().zip(counts))
        .filter(|(_, (_, planned))| *planned > 0)
        .map(|(step, (done, planned))| format!("{} {done}/{planned}", step.words().short))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_only_steps_with_items_in_order() {
        let mut counts = [(0, 3), (0, 0), (0, 2), (0, 1)];
        assert_eq!(
            steps_line(&counts),
            "containers 0/3 · build dirs 0/2 · resets 0/1"
        );
        counts[0].0 = 3;
        counts[3].0 = 1;
        assert_eq!(
            steps_line(&counts),
            "containers 3/3 · build dirs 0/2 · resets 1/1"
        );
        assert_eq!(steps_line(&[(0, 0); 4]), "");
    }
}
