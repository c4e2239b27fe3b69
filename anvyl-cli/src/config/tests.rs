//! Layers, keys, values and their errors, as a user writes them.

use super::*;
use clap::Parser;
use figment::Jail;

fn load(args: &[&str]) -> Result<Config, CliError> {
    let mut argv = vec!["anvyl"];
    argv.extend(args);
    argv.extend(["agent", "cleanup"]);
    let cli = crate::cli::Cli::parse_from(argv);
    Config::load(cli.config.as_deref(), cli.backend)
}

#[test]
fn later_layers_win() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.create_file("file.toml", "backend = \"podman\"\nparallelism = 4\n")?;
        assert_eq!(load(&[]).unwrap().backend, BackendKind::Docker);
        let from_file = load(&["--config", "file.toml"]).unwrap();
        assert_eq!(
            (from_file.backend, from_file.parallelism),
            (BackendKind::Podman, 4)
        );
        jail.set_env("ANVYL_BACKEND", "docker");
        jail.set_env("ANVYL_DOCKER_ENDPOINT", "unix:///x.sock");
        let from_env = load(&["--config", "file.toml"]).unwrap();
        assert_eq!(from_env.backend, BackendKind::Docker);
        assert_eq!(from_env.docker.endpoint.as_deref(), Some("unix:///x.sock"));
        let from_flag = load(&["--config", "file.toml", "--backend", "podman"]).unwrap();
        assert_eq!(from_flag.backend, BackendKind::Podman);
        Ok(())
    });
}

#[test]
fn unknown_keys_and_bad_values_name_the_file() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.create_file("typo.toml", "paralelism = 4\n")?;
        let err = load(&["--config", "typo.toml"]).unwrap_err().to_string();
        assert!(
            err.contains(
                "typo.toml:1:1: unknown key `paralelism`, did you mean `parallelism`?\n  1 | paralelism = 4\n    | ^^^^^^^^^^"
            ),
            "{err}"
        );
        jail.create_file("nested.toml", "[docker]\n\n  endpiont = \"unix:///x\"\n")?;
        let err = load(&["--config", "nested.toml"]).unwrap_err().to_string();
        assert!(
            err.contains(
                "nested.toml:3:3: unknown key `docker.endpiont`, did you mean `docker.endpoint`?"
            ),
            "{err}"
        );
        jail.set_env("ANVYL_PARALLELISM", "many");
        let err = load(&[]).unwrap_err().to_string();
        assert!(err.contains("ANVYL_PARALLELISM: invalid type"), "{err}");
        jail.set_env("ANVYL_PARALLELISM", "4");
        jail.create_file("bad.toml", "backend = \"lxc\"\n")?;
        let err = load(&["--config", "bad.toml"]).unwrap_err().to_string();
        assert!(err.contains("lxc") && err.contains("bad.toml"), "{err}");
        let err = load(&["--config", "missing.toml"]).unwrap_err();
        assert_eq!(err.exit_status(), crate::error::EXIT_USAGE);
        Ok(())
    });
}

/// What a user sees on stderr for `--config anvyl.toml` holding `text`.
fn printed_for(jail: &mut Jail, text: &str) -> figment::error::Result<String> {
    jail.create_file("anvyl.toml", text)?;
    let err = load(&["--config", "anvyl.toml"]).unwrap_err();
    assert_eq!(err.exit_status(), crate::error::EXIT_USAGE, "{err}");
    Ok(err.printed())
}

#[test]
fn a_syntax_error_is_one_line_then_the_source_line_and_a_caret() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        let cases = [
            (
                "syntax_missing_equals",
                "backend = \"docker\"\nparallelism 4\n",
            ),
            (
                "syntax_unterminated_string",
                "backend = \"podman\nparallelism = 4\n",
            ),
            ("syntax_escape_and_tab", "\tbackend = \"do\x1b[31mcker\"\n"),
            (
                "syntax_on_the_last_line_without_a_newline",
                "parallelism = 4\nbackend = ",
            ),
        ];
        for (name, text) in cases {
            let printed = printed_for(jail, text)?;
            let lines: Vec<&str> = printed.lines().collect();
            assert_eq!(lines.len(), 3, "{printed}");
            assert!(
                lines[0].starts_with("error: configuration: anvyl.toml:")
                    && lines[0].contains(": invalid TOML: ")
                    && !lines[0].contains("``"),
                "{printed}"
            );
            assert!(
                !printed.chars().any(|c| c.is_control() && c != '\n'),
                "{printed:?}"
            );
            insta::assert_snapshot!(name, printed);
        }
        Ok(())
    });
}

#[test]
fn control_characters_in_a_key_or_a_value_are_escaped() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        // TOML escapes: the key and the value hold a real ESC and tab.
        let key = printed_for(jail, "\"paral\\u001b[2Jlelism\" = 4\n")?;
        assert!(
            key.starts_with(
                "error: configuration: anvyl.toml:1:1: unknown key `paral\\u{1b}[2Jlelism`"
            ),
            "{key}"
        );
        let value = printed_for(jail, "backend = \"\\u001b[31mlxc\\t\"\n")?;
        assert!(value.contains("`\\u{1b}[31mlxc\\t`"), "{value}");
        for printed in [key, value] {
            assert!(
                !printed.chars().any(|c| c.is_control() && c != '\n'),
                "{printed:?}"
            );
        }
        Ok(())
    });
}

/// No variables but where the user's configuration is: what one set is
/// unset (an empty value is still a value to figment).
fn without_variables(jail: &mut Jail) {
    jail.clear_env();
    jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
}

#[test]
fn durations_are_humantime_words_or_the_old_whole_numbers() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.create_file(
            "new.toml",
            "stop_timeout = \"10s\"\nrequest_timeout = \"2m\"\nsettle = \"500ms\"\n",
        )?;
        let new = load(&["--config", "new.toml"]).unwrap();
        assert_eq!(new.stop_timeout, Duration::from_secs(10));
        assert_eq!(new.request_timeout(), Duration::from_secs(120));
        assert_eq!(new.settle, Duration::from_millis(500));
        // What configurations held before durations: seconds, and
        // settle_ms in milliseconds.
        jail.create_file(
            "old.toml",
            "stop_timeout = 10\nrequest_timeout = 5\nsettle_ms = 300\n",
        )?;
        let old = load(&["--config", "old.toml"]).unwrap();
        assert_eq!(old.stop_timeout, Duration::from_secs(10));
        assert_eq!(old.request_timeout(), Duration::from_secs(5));
        assert_eq!(old.lifecycle_settings().settle, Duration::from_millis(300));
        Ok(())
    });
}

#[test]
fn durations_from_the_environment_in_either_form() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.set_env("ANVYL_STOP_TIMEOUT", "10");
        jail.set_env("ANVYL_REQUEST_TIMEOUT", "1h 30m");
        jail.set_env("ANVYL_SETTLE_MS", "300");
        let config = load(&[]).unwrap();
        assert_eq!(config.stop_timeout, Duration::from_secs(10));
        assert_eq!(config.request_timeout(), Duration::from_secs(5400));
        assert_eq!(config.settle, Duration::from_millis(300));
        without_variables(jail);
        jail.set_env("ANVYL_STOP_TIMEOUT", "10s");
        jail.set_env("ANVYL_SETTLE", "0");
        let config = load(&[]).unwrap();
        assert_eq!(config.stop_timeout, Duration::from_secs(10));
        assert_eq!(config.settle, Duration::ZERO);
        jail.set_env("ANVYL_STOP_TIMEOUT", "ten");
        let err = load(&[]).unwrap_err().to_string();
        assert!(
            err.contains("ANVYL_STOP_TIMEOUT: invalid value string \"ten\", expected a duration such as \"10s\""),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn a_later_layer_wins_whichever_spelling_of_settle_either_used() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.create_file("old.toml", "settle_ms = 300\n")?;
        jail.create_file("new.toml", "settle = \"2s\"\n")?;
        jail.set_env("ANVYL_SETTLE", "2s");
        assert_eq!(
            load(&["--config", "old.toml"]).unwrap().settle,
            Duration::from_secs(2)
        );
        without_variables(jail);
        jail.set_env("ANVYL_SETTLE_MS", "250");
        assert_eq!(
            load(&["--config", "new.toml"]).unwrap().settle,
            Duration::from_millis(250)
        );
        Ok(())
    });
}

#[test]
fn a_bad_duration_names_its_key_and_what_is_accepted() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        let cases = [
            (
                "stop_timeout = \"ten\"\n",
                "anvyl.toml:1:1: `stop_timeout`: invalid value string \"ten\", expected a duration such as \"10s\", \"2m\", \"1h 30m\" or \"500ms\", or a whole number of seconds",
            ),
            (
                "request_timeout = -5\n",
                "anvyl.toml:1:1: `request_timeout`: invalid value signed int `-5`, expected a duration",
            ),
            (
                "settle_ms = \"fast\"\n",
                "anvyl.toml:1:1: `settle_ms`: invalid type: found string \"fast\", expected a whole number of milliseconds (settle takes durations such as \"500ms\")",
            ),
            (
                "settle = \"1s\"\nsettle_ms = 300\n",
                "anvyl.toml:2:1: `settle_ms`: the old spelling of settle, set here too: keep one of them",
            ),
            (
                "request_timeout = \"500ms\"\n",
                "request_timeout must be at least 1s, not 500ms",
            ),
            ("request_timeout = 0\n", "request_timeout must be at least 1s, not 0s"),
            (
                "stop_timeout = \"1500ms\"\n",
                "stop_timeout must be whole seconds (the engines count in seconds), not 1s 500ms",
            ),
        ];
        for (text, expected) in cases {
            let printed = printed_for(jail, text)?;
            let first = printed.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("error: configuration: ") && first.contains(expected),
                "{text:?}: {printed}"
            );
        }
        Ok(())
    });
}

#[test]
fn defaults_agree_with_the_core() {
    let ours = Config::default();
    let core = anvyl_core::lifecycle::LifecycleSettings::default();
    let settings = ours.lifecycle_settings();
    assert_eq!(settings.stop_timeout, core.stop_timeout);
    assert_eq!(settings.settle, core.settle);
    assert_eq!(settings.cleanup, core.cleanup);
}

#[test]
fn unrelated_anvyl_variables_are_not_config() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.set_env("ANVYL_ITEST_DOCKER_HOST", "whatever");
        assert!(load(&[]).is_ok());
        Ok(())
    });
}

#[test]
fn an_empty_or_relative_state_dir_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        jail.create_file("empty.toml", "state_dir = \"\"\n")?;
        let config = load(&["--config", "empty.toml"]).unwrap();
        let err = config.state_dir().unwrap_err();
        assert_eq!(err.exit_status(), crate::error::EXIT_USAGE);
        assert!(err.to_string().contains("absolute"), "{err}");
        jail.set_env("ANVYL_STATE_DIR", "relative/state");
        assert!(load(&[]).unwrap().state_dir().is_err());
        jail.set_env("ANVYL_STATE_DIR", "/var/lib/anvyl");
        assert_eq!(
            load(&[]).unwrap().state_dir().unwrap(),
            Path::new("/var/lib/anvyl")
        );
        Ok(())
    });
}

#[test]
fn the_build_cache_setting_reaches_every_cleanup_and_refuses_other_words() {
    Jail::expect_with(|jail| {
        jail.set_env("XDG_CONFIG_HOME", jail.directory().join("xdg").display());
        let default = load(&[]).unwrap();
        assert_eq!(
            default.cleanup_settings().build_cache,
            anvyl_core::BuildCache::Keep
        );
        jail.create_file("file.toml", "build_cache = \"remove\"\n")?;
        let owned = load(&["--config", "file.toml"]).unwrap();
        assert_eq!(
            owned.lifecycle_settings().cleanup.build_cache,
            anvyl_core::BuildCache::Remove
        );
        jail.set_env("ANVYL_BUILD_CACHE", "keep");
        let env = load(&["--config", "file.toml"]).unwrap();
        assert_eq!(
            env.cleanup_settings().build_cache,
            anvyl_core::BuildCache::Keep
        );
        jail.set_env("ANVYL_BUILD_CACHE", "prune");
        let err = load(&[]).unwrap_err().to_string();
        assert!(
            err.contains("ANVYL_BUILD_CACHE") && err.contains("`remove`"),
            "{err}"
        );
        Ok(())
    });
}
