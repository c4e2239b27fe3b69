//! The safety corpus: resources that look like anvyl's but are not — longer
//! names, prefixed names, another installation's labels, a user's tags on
//! anvyl's image (in any repository), unlabelled resources under an agent's
//! exact name — survive every cleanup, counted one by one.

use std::collections::BTreeSet;

use anvyl_core::backend::Labels;
use anvyl_core::{InstanceId, Ownership, StartId};
use anvyl_tests::reliability::tally;
use anvyl_tests::Sandbox;

use crate::unique;

#[tokio::test]
async fn lookalikes_survive_a_cleanup_of_everything() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("web"));
    let legacy = s.agent(&unique("legacy"));
    let base = s.itest.base_image.clone();

    // What is anvyl's: web's labelled leftovers. Legacy's unlabelled
    // resources named exactly for it are anvyl's only when asked.
    let (c_web, _) = s.leftovers(&web).await;
    s.image(&legacy.image_tag(), Labels::new()).await;
    let c_legacy = s
        .container(&legacy.resource_name(), &legacy.image_tag(), Labels::new())
        .await;

    // What is not.
    let theirs = Ownership::new(InstanceId::random());
    let foreign_labels = theirs.stamp(&Labels::new(), &web, &StartId::random());
    let user_tags = [
        format!("team/{web}:prod"),
        format!("{}:backup", web.resource_name()),
        format!("localhost/{}:mine", web.resource_name()),
    ];
    for user_tag in &user_tags {
        s.engine
            .tag_image(&web.image_tag(), user_tag)
            .await
            .expect("user tag");
    }
    // A user-built image in anvyl's repository, not labelled.
    let user_built = format!("{}:v2", legacy.resource_name());
    s.image(&user_built, Labels::new()).await;
    let lookalike_images = [
        format!("{}2:latest", web.resource_name()),
        format!("my-{}:latest", web.resource_name()),
        format!("{}-x:latest", legacy.resource_name()),
    ];
    for tag in &lookalike_images {
        s.image(tag, Labels::new()).await;
    }
    let foreign_image = format!("{}-foreign:latest", web.resource_name());
    s.image(&foreign_image, foreign_labels.clone()).await;
    let mut survivors = vec![
        s.container(&format!("{}2", web.resource_name()), &base, Labels::new())
            .await,
        s.container(&format!("my-{}", web.resource_name()), &base, Labels::new())
            .await,
        s.container(
            &format!("{}-old", legacy.resource_name()),
            &base,
            Labels::new(),
        )
        .await,
        s.container(
            &format!("x{}", legacy.resource_name()),
            &base,
            Labels::new(),
        )
        .await,
        s.container(
            &format!("{}-foreign", web.resource_name()),
            &base,
            foreign_labels,
        )
        .await,
    ];
    // An unknown agent's exact legacy name is not ours either.
    survivors.push(
        s.container(
            &format!("anvyl-agent-{}", unique("stranger")),
            &base,
            Labels::new(),
        )
        .await,
    );

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("unlabelled — not removed"),
        "the plan shows what it keeps: {run:?}"
    );
    // Other tests share the engine, so only this test's resources are counted.
    let s = &s;
    let gone = |ids: Vec<String>| async move {
        let mut gone = BTreeSet::new();
        for id in ids {
            if !s.has_container(&id).await {
                gone.insert(id);
            }
        }
        gone
    };
    let mine: Vec<String> = survivors
        .iter()
        .cloned()
        .chain([c_web.clone(), c_legacy.clone()])
        .collect();
    assert_eq!(
        gone(mine.clone()).await,
        BTreeSet::from([c_web.clone()]),
        "removed containers"
    );
    for user_tag in &user_tags {
        assert!(
            s.has_image(user_tag).await,
            "the user's tag {user_tag} on anvyl's image was removed"
        );
    }
    for tag in lookalike_images.iter().chain([&foreign_image, &user_built]) {
        assert!(s.has_image(tag).await, "look-alike image {tag} removed");
    }
    assert!(!s.has_image(&web.image_tag()).await);
    assert!(
        s.has_image(&legacy.image_tag()).await,
        "unlabelled image removed unasked"
    );

    // Asked for, the unlabelled resources of a known agent go — and only
    // its exact container name and `:latest`.
    let run = s.anvyl(&["agent", "cleanup", "--yes", "--include-unlabelled"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        gone(mine).await,
        BTreeSet::from([c_web.clone(), c_legacy.clone()]),
        "removed containers with --include-unlabelled"
    );
    assert!(!s.has_image(&legacy.image_tag()).await);
    assert!(
        s.has_image(&user_built).await,
        "a user-built {user_built} was removed"
    );
    tally("foreign_removed", 0);
    tally("hostile_cases", 1);
    eprintln!(
        "look-alikes: {} containers and {} images not anvyl's; 0 removed",
        survivors.len(),
        lookalike_images.len() + user_tags.len() + 2
    );

    let cleanup: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let images: Vec<&str> = lookalike_images
        .iter()
        .map(String::as_str)
        .chain(user_tags.iter().map(String::as_str))
        .chain([foreign_image.as_str(), user_built.as_str()])
        .collect();
    s.discard(&cleanup, &images).await;
}
