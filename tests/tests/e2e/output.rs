//! What `agent cleanup` prints: a JSON document listing every planned item,
//! and a rendered plan pinned by a snapshot (ids, names and paths filtered).

use anvyl_core::AgentStatus;
use anvyl_tests::Sandbox;

use crate::unique;

#[tokio::test]
async fn json_output_parses_and_lists_every_planned_item() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("json"));
    let (container, _) = s.leftovers(&web).await;
    let dir = s.build_dir(&web, "j1");
    s.set_status(&web, AgentStatus::Failed, None);

    let dry = s.anvyl(&["--output", "json", "agent", "cleanup", "--dry-run"]);
    assert_eq!(dry.code, Some(0), "{dry:?}");
    let doc: serde_json::Value = serde_json::from_str(&dry.stdout).expect("valid JSON");
    assert_eq!(doc["dry_run"], true);
    let names = |key: &str, field: &str| -> Vec<String> {
        doc["plan"][key]
            .as_array()
            .unwrap_or_else(|| panic!("plan.{key} is not an array"))
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("containers", "name"), vec![web.resource_name()]);
    assert_eq!(names("containers", "id"), vec![container.clone()]);
    assert_eq!(names("images", "display"), vec![web.image_tag()]);
    assert_eq!(names("build_dirs", "path"), vec![dir.display().to_string()]);
    assert_eq!(names("resets", "agent"), vec![web.to_string()]);
    assert!(doc["report"].is_null());

    let done = s.anvyl(&["--output", "json", "agent", "cleanup", "--yes"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    let doc: serde_json::Value = serde_json::from_str(&done.stdout).expect("valid JSON");
    let outcomes: Vec<&str> = doc["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|step| step["items"].as_array().unwrap())
        .map(|item| item["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["removed"; 4]);
    assert_eq!(doc["remaining_owned"], 0);
}

#[tokio::test]
async fn a_rendered_plan_matches_its_snapshot() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("snap"));
    s.leftovers(&web).await;
    s.build_dir(&web, "s1");
    s.set_status(&web, AgentStatus::Failed, None);

    let run = s.anvyl(&["agent", "cleanup", web.as_str(), "--dry-run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let state_dir = s.state_dir.path().display().to_string();
    insta::with_settings!({
        filters => vec![
            (state_dir.as_str(), "[STATE]"),
            (r"snap-[0-9a-f]{12}", "snap-[ID]"),
            // Column widths follow the filtered names; fold runs of blanks.
            (r" {2,}", "  "),
            // Dangling images come and go with the tests that share the engine.
            (r"(?m)^Hint: .*\n?", ""),
        ],
        // One snapshot for both engines: the plan must not differ.
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("rendered_plan", run.stdout);
    });
    s.anvyl(&["agent", "cleanup", web.as_str(), "--yes"]);
}

#[tokio::test]
async fn dangling_images_get_the_engines_prune_hint_and_are_left_alone() {
    let s = Sandbox::new().await;
    // Rebuilding a tag leaves the first image dangling: the engine's, not anvyl's.
    let tag = format!("{}:latest", unique("rebuilt"));
    let first = s.image(&tag, Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nLABEL again=yes\n", s.itest.base_image),
    )
    .unwrap();
    let spec = anvyl_core::BuildSpec {
        context_dir: dir.path().to_path_buf(),
        tag: tag.clone(),
        labels: Default::default(),
        network: Some("none".into()),
        credentials: Default::default(),
    };
    s.engine.build_image(&spec, &|_| {}).await.expect("rebuild");

    let run = s.anvyl(&["agent", "cleanup", "--dry-run"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    let prune = format!("`{} system prune -f`", s.itest.backend);
    assert!(run.stdout.contains(&prune), "no hint in:\n{}", run.stdout);
    assert!(s.has_image(&first).await, "a dangling image was removed");
    s.discard(&[], &[&tag, &first]).await;
}
