//! The build's own record of what it made: which step images a build
//! created, read from the output it streams as it goes. Docker's classic
//! builder (the one `/build` runs, on the classic and the containerd image
//! store alike) names each step (`Step 2/5 : RUN …`), says whether it ran
//! (` ---> Running in <container>`) or was taken from the cache
//! (` ---> Using cache`), and then names the step's image (` ---> <id>`).
//! Only a step that ran made its image: one taken from the cache is someone
//! else's — an earlier start's, or a build anvyl never saw — and is never
//! recorded. Buildah (Podman) builds anvyl's images without layers and
//! names no step image it ran, so nothing of its output is recorded.
//!
//! A step's command writes to the same stream, so a line of its output can
//! look like the builder's. Each record therefore also names the image the
//! step was built on (the previous step's), and a cleanup removes a
//! recorded image only if the engine says it is untagged and built on
//! exactly that parent (see `pipeline::steps`): a made-up line names an
//! image that fails the check, or one built on anvyl's own step.

/// A step image a build created, as the builder printed the ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeStep {
    /// The step's image.
    pub image: String,
    /// The image the step was built on.
    pub parent: String,
}

/// Follows a build's output lines and tells each step image the build
/// created, the moment the builder names it.
#[derive(Debug, Default)]
pub struct StepRecorder {
    /// The current step ran a container (made its image).
    ran: bool,
    /// The current step came from the cache.
    cached: bool,
    /// The image of the step before: the base, a cached or a made step.
    previous: Option<String>,
}

impl StepRecorder {
    /// Reads one line of output; returns the step image this build has
    /// just created, if the line names one.
    pub fn read(&mut self, line: &str) -> Option<MadeStep> {
        let line = line.trim();
        if line.starts_with("Step ") && line.contains(" : ") {
            (self.ran, self.cached) = (false, false);
            return None;
        }
        let said = line.strip_prefix("--->")?.trim();
        if said.starts_with("Running in ") {
            self.ran = true;
        } else if said.starts_with("Using cache") {
            self.cached = true;
        } else if is_image_id(said) {
            let made = self.ran && !self.cached;
            (self.ran, self.cached) = (false, false);
            let parent = self.previous.replace(said.to_string());
            return match (made, parent) {
                (true, Some(parent)) => Some(MadeStep {
                    image: said.to_string(),
                    parent,
                }),
                _ => None,
            };
        }
        None
    }
}

/// A short or full image id as a builder prints it: hex, at least 12.
fn is_image_id(word: &str) -> bool {
    let hex = word.strip_prefix("sha256:").unwrap_or(word);
    hex.len() >= 12
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(lines: &str) -> Vec<String> {
        let mut recorder = StepRecorder::default();
        (lines.lines())
            .filter_map(|l| recorder.read(l))
            .map(|made| format!("{}<{}", made.image, made.parent))
            .collect()
    }

    /// Docker 20.10, as measured: a step taken from the cache is not
    /// recorded, the base never is, every step that ran is.
    #[test]
    fn docker_20_10_records_the_steps_that_ran() {
        let output = "Step 1/5 : FROM anvyl-itest-base:latest
 ---> 901e16194c2a
Step 2/5 : RUN echo a > /a
 ---> Using cache
 ---> 7dcfff7be30f
Step 3/5 : RUN echo c > /c
 ---> Running in 711dee7daf07
Removing intermediate container 711dee7daf07
 ---> 7573e57f2092
Step 4/5 : CMD [\"sleep\",\"1\"]
 ---> Running in ed45a4dda29f
Removing intermediate container ed45a4dda29f
 ---> ced769ed0471
Step 5/5 : LABEL io.x=z
 ---> Running in b72b5834d167
Removing intermediate container b72b5834d167
 ---> 3fb4c0fbe5aa
Successfully built 3fb4c0fbe5aa
Successfully tagged exp:2";
        assert_eq!(
            created(output),
            [
                "7573e57f2092<7dcfff7be30f",
                "ced769ed0471<7573e57f2092",
                "3fb4c0fbe5aa<ced769ed0471"
            ]
        );
    }

    /// Docker 28.5 on the containerd store words the removal differently.
    #[test]
    fn docker_28_5_records_the_steps_that_ran() {
        let output = "Step 1/3 : FROM anvyl-itest-base:latest
 ---> 1853ce546542
Step 2/3 : RUN echo a > /a
 ---> Running in 12f1f3e78200
 ---> Removed intermediate container 12f1f3e78200
 ---> efbf5b11ae65
Step 3/3 : LABEL io.x=y
 ---> Running in 7e06852ab09f
 ---> Removed intermediate container 7e06852ab09f
 ---> 3259fcc497bf";
        assert_eq!(
            created(output),
            ["efbf5b11ae65<1853ce546542", "3259fcc497bf<efbf5b11ae65"]
        );
    }

    /// A failing step names no image; a build's own `RUN` output that
    /// looks like a step is no step.
    #[test]
    fn a_failed_step_and_lookalike_output_record_nothing() {
        let output = "Step 1/2 : FROM base
 ---> 901e16194c2a
Step 2/2 : RUN echo ' ---> 0123456789ab'; exit 1
 ---> Running in 711dee7daf07
 ---> 0123456789ab
The command '/bin/sh -c exit 1' returned a non-zero code: 1";
        // The echoed line is indistinguishable from the builder's: it is
        // recorded with the parent it must have, which the cleanup checks
        // before it removes anything (see `pipeline::steps`).
        assert_eq!(created(output), ["0123456789ab<901e16194c2a"]);
        assert!(created("Step 1/1 : FROM x\n ---> 0123456789AB").is_empty());
    }

    /// Buildah's lines (Podman) are never read as steps anvyl made.
    #[test]
    fn podman_output_records_nothing() {
        let output = "STEP 1/3: FROM anvyl-itest-base:latest
STEP 2/3: RUN echo a > /a
--> 01f4ecfec72
STEP 3/3: LABEL io.x=y
COMMIT exp:1
--> 815d81c4c11
Successfully tagged localhost/exp:1
815d81c4c112b3972a94a2a5578980d312749cff3e3f7ddddd97c996e6e3933a";
        assert!(created(output).is_empty());
    }
}
