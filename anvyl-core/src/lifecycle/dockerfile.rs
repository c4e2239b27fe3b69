//! The generated Dockerfile of an agent, and the checks its spec passes at
//! `agent create`. Secrets never appear here: the provider key reaches the
//! container as environment at create time.

use crate::state::AgentSpec;

/// Why a spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent spec: {0}")]
pub struct InvalidSpec(pub String);

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Not blank, and no character that ends or hides a Dockerfile line.
fn is_one_line(text: &str) -> bool {
    !text.trim().is_empty() && !text.contains(['\n', '\r', '\0'])
}

/// Whether a `RUN` line would open a Dockerfile heredoc: `<<` (not a
/// here-string's `<<<`), an optional `-`, blanks and quote, then a word.
/// Builders that read heredocs take every following line up to that word
/// as the heredoc's body, anvyl's final `LABEL` included — the image would
/// not carry its ownership labels. Erring on the side of refusing: a shift
/// like `$((1<<3))` is refused too, and reads as well as `$((1*8))`.
fn opens_a_heredoc(step: &str) -> bool {
    let bytes = step.as_bytes();
    (0..bytes.len().saturating_sub(1)).any(|i| {
        if &bytes[i..i + 2] != b"<<" || (i > 0 && bytes[i - 1] == b'<') {
            return false;
        }
        let mut rest = bytes[i + 2..].iter().peekable();
        if rest.peek() == Some(&&b'<') {
            return false;
        }
        let rest: Vec<u8> = rest
            .copied()
            .skip_while(|b| *b == b'-')
            .skip_while(u8::is_ascii_whitespace)
            .skip_while(|b| *b == b'"' || *b == b'\'')
            .collect();
        rest.first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    })
}

/// Checks a spec before anything is recorded.
pub fn validate_spec(spec: &AgentSpec) -> Result<(), InvalidSpec> {
    let bad = |why: String| Err(InvalidSpec(why));
    if spec.image.trim().is_empty() || spec.image.chars().any(char::is_whitespace) {
        return bad(format!(
            "base image {:?} must be one non-empty word",
            spec.image
        ));
    }
    for step in &spec.setup {
        if !is_one_line(step) {
            return bad(format!("setup command {step:?} must be one non-empty line"));
        }
        // In a Dockerfile a trailing backslash continues the instruction on
        // the next line: the next RUN or the CMD would be swallowed into it.
        if step.trim_end().ends_with('\\') {
            return bad(format!(
                "setup command {step:?} ends with a backslash, which would join it to the next line"
            ));
        }
    }
    if let Some(step) = spec.setup.iter().find(|s| opens_a_heredoc(s)) {
        return bad(format!(
            "setup command {step:?} opens a heredoc (<<WORD), which a builder that reads heredocs \
             (Podman 5, BuildKit) fills with the lines after it — the other steps and anvyl's \
             labels; write the text with printf or echo instead"
        ));
    }
    if let Some(command) = &spec.command {
        if !is_one_line(command) {
            return bad(format!("command {command:?} must be one non-empty line"));
        }
    }
    for kv in &spec.env {
        match kv.split_once('=') {
            Some((k, _)) if is_env_name(k) => {}
            _ => return bad(format!("environment {kv:?} must be KEY=VALUE")),
        }
    }
    if let Some(var) = &spec.api_key_env {
        if !is_env_name(var) {
            return bad(format!("--api-key-env {var:?} is not a variable name"));
        }
    }
    spec.resources.check().map_err(InvalidSpec)
}

/// The name of the Dockerfile the backends write into a build context: the
/// context's `Dockerfile` with [`labelled_dockerfile`]'s final `LABEL`.
pub const LABELLED_DOCKERFILE: &str = ".anvyl.Dockerfile";

/// `dockerfile` with one final `LABEL` instruction of every label.
///
/// Why not the engines' `labels` build parameter: Docker's classic builder
/// and Podman's buildah both turn it into one `LABEL` step per label, in no
/// fixed order, so the step images between them carry some of anvyl's
/// labels and serve as build cache to other starts (measured on Docker
/// 20.10: `--label a=1 --label s=one`, then `s=two`, reuse the `a=1` step).
/// Removing one agent's image then pruned a step image a concurrent start
/// was building on ("No such image" on Docker, "layer not known" on
/// Podman). One instruction labels the final image only.
pub fn labelled_dockerfile(dockerfile: &str, labels: &crate::backend::Labels) -> String {
    let mut text = dockerfile.trim_end().to_string();
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
            .collect();
        text.push_str("\nLABEL ");
        text.push_str(&pairs.join(" "));
    }
    text.push('\n');
    text
}

/// A double-quoted Dockerfile word: backslashes and quotes escaped, and no
/// line break can end the instruction early.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ");
    format!("\"{escaped}\"")
}

/// The Dockerfile of `spec`: `FROM` the base image, one `RUN` per setup
/// command, the command as `CMD` through `/bin/sh -c`.
pub fn render_dockerfile(agent: &str, spec: &AgentSpec) -> String {
    let mut text = format!(
        "# Generated by anvyl for agent '{agent}'.\nFROM {}\n",
        spec.image
    );
    for step in &spec.setup {
        text.push_str(&format!("RUN {step}\n"));
    }
    if let Some(command) = &spec.command {
        let cmd = serde_json::to_string(&["/bin/sh", "-c", command.as_str()])
            .expect("strings always serialise");
        text.push_str(&format!("CMD {cmd}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_has_one_run_per_setup_and_a_shell_cmd() {
        let spec = AgentSpec {
            image: "base:1".into(),
            setup: vec!["echo a".into(), "touch /b".into()],
            command: Some(r#"echo "hi" && sleep 1"#.into()),
            ..AgentSpec::default()
        };
        assert_eq!(
            render_dockerfile("web", &spec),
            "# Generated by anvyl for agent 'web'.\nFROM base:1\nRUN echo a\nRUN touch /b\nCMD [\"/bin/sh\",\"-c\",\"echo \\\"hi\\\" && sleep 1\"]\n"
        );
    }

    #[test]
    fn labels_become_one_final_instruction() {
        let mut labels = crate::backend::Labels::new();
        labels.insert("io.anvyl.agent".into(), "web".into());
        labels.insert("odd".into(), "a \"b\"\nc\\".into());
        assert_eq!(
            labelled_dockerfile("FROM x\nCMD [\"sh\"]\n", &labels),
            "FROM x\nCMD [\"sh\"]\nLABEL \"io.anvyl.agent\"=\"web\" \"odd\"=\"a \\\"b\\\" c\\\\\"\n"
        );
        assert_eq!(
            labelled_dockerfile("FROM x", &crate::backend::Labels::new()),
            "FROM x\n"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = AgentSpec {
            image: "base".into(),
            ..AgentSpec::default()
        };
        assert!(validate_spec(&ok).is_ok());
        for bad in [
            AgentSpec {
                image: "".into(),
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["a\nb".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["apt-get install -y \\".into(), "curl".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["echo a \\  ".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["cat > /etc/motd <<EOF".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["python3 - <<-'PY'".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["echo $((1<<3))".into()],
                ..ok.clone()
            },
            AgentSpec {
                setup: vec!["cat << EOF".into()],
                ..ok.clone()
            },
            AgentSpec {
                command: Some("serve\r".into()),
                ..ok.clone()
            },
            AgentSpec {
                env: vec!["NOEQUALS".into()],
                ..ok.clone()
            },
            AgentSpec {
                env: vec!["1X=y".into()],
                ..ok.clone()
            },
            AgentSpec {
                api_key_env: Some("BAD-NAME".into()),
                ..ok.clone()
            },
        ] {
            assert!(validate_spec(&bad).is_err(), "{bad:?}");
        }
        for fine in ["cat <<< 'here-string'", "echo '<<'", "test 1 -lt 2"] {
            let spec = AgentSpec {
                setup: vec![fine.into()],
                ..ok.clone()
            };
            assert!(validate_spec(&spec).is_ok(), "{fine:?}");
        }
    }
}
