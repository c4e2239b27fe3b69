//! Untagged images of interrupted starts: removed only while nothing tags them, whatever happens between the plan and the removal.

use super::*;

#[tokio::test]
async fn an_untagged_image_tagged_while_the_prompt_waits_is_kept() {
    let w = World::new();
    let web = w.agent("web");
    let image = untagged_leftover(&w, &web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.images.len(), 1, "{plan:?}");

    // The user answers the [y/N] prompt only after tagging the image.
    w.engine.tag_image(&image, "keep:mine").await.unwrap();
    let report = cleanup.apply(&plan).await;

    let kept = w.engine.inspect_image("keep:mine").await.unwrap();
    assert_eq!(kept.id, image);
    assert_eq!(kept.tags, vec![ImageTag::parse("keep:mine")]);
    assert_eq!(
        skipped_as_changed(&report),
        vec!["tagged keep:mine since the plan".to_string()],
        "{report:?}"
    );
}

#[tokio::test]
async fn an_untagged_image_tagged_during_its_removal_keeps_the_tag() {
    let w = World::new();
    let web = w.agent("web");
    let image = untagged_leftover(&w, &web).await;
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    // The tag lands after the re-check, while the removal is on its way to
    // the engine: a removal by id would take it with the image.
    let gate = crate::memory::Gate::new();
    w.engine
        .inject(Op::RemoveImage, None, Fault::Gate(gate.clone()), Some(1));
    let apply = cleanup.apply(&plan);
    let user = async {
        gate.reached().await;
        w.engine.tag_image(&image, "keep:mine").await.unwrap();
        gate.open();
    };
    let (report, ()) = tokio::join!(apply, user);

    let kept = w.engine.inspect_image("keep:mine").await.unwrap();
    assert_eq!(kept.id, image, "{report:?}");
    assert_eq!(kept.tags, vec![ImageTag::parse("keep:mine")]);
    assert_eq!(skipped_as_changed(&report).len(), 1, "{report:?}");

    // Untouched, the same leftover is removed, tag and image.
    let again = untagged_leftover(&w, &web).await;
    let report = cleanup
        .apply(&cleanup.plan(Scope::All).await.unwrap())
        .await;
    assert!(w.engine.inspect_image(&again).await.is_err(), "{report:?}");
    assert_eq!(report.count(|o| *o == Outcome::Removed), 1, "{report:?}");
}

#[tokio::test]
async fn an_untagged_image_waits_for_its_starts_tag_to_be_given_up() {
    // A start whose build was retried left its first image untagged; the
    // second holds the start's tag, and both are planned.
    let w = World::new();
    let web = w.agent("web");
    let first = untagged_leftover(&w, &web).await;
    let start = StartId::from_stored(
        w.engine.inspect_image(&first).await.unwrap().labels[crate::ownership::LABEL_START].clone(),
    );
    let labels = w.ours().stamp(&Labels::new(), &web, &start);
    let second = w.engine.seed_image(&[&web.start_tag(&start)], labels);
    let cleanup = w.cleanup();
    let plan = cleanup.plan(Scope::All).await.unwrap();
    assert_eq!(plan.images.len(), 2, "{plan:?}");
    // The tag's removal is slow to come back.
    let gate = crate::memory::Gate::new();
    w.engine.inject(
        Op::RemoveImage,
        Some(&web.start_tag(&start)),
        Fault::Gate(gate.clone()),
        Some(1),
    );
    let apply = cleanup.apply(&plan);
    let slow = async {
        gate.reached().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.open();
    };
    let (report, ()) = tokio::join!(apply, slow);

    assert!(w.engine.inspect_image(&second).await.is_err(), "{report:?}");
    assert!(w.engine.inspect_image(&first).await.is_err(), "{report:?}");
    assert_eq!(report.remaining_owned(), 0, "{report:?}");
}
