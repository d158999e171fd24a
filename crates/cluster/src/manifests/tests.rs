use std::fs;

use super::*;

const SVC: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

#[test]
fn reads_nested_multi_document_files_and_skips_hidden_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(
        dir.path().join("a.yaml"),
        format!("{SVC}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\n"),
    )
    .expect("write");
    fs::write(
        dir.path().join("sub/b.json"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"}}"#,
    )
    .expect("write");
    fs::write(dir.path().join(".hidden.yaml"), "not: [valid").expect("write");
    fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    let mut cache = ManifestCache::default();
    let (state, changed) = cache.scan(dir.path());
    assert!(changed);
    assert_eq!(state.services.len(), 2);
    assert_eq!(state.pods.len(), 1);
    assert!(state.invalid.is_empty(), "{:?}", state.invalid);
    let (_, changed) = cache.scan(dir.path());
    assert!(!changed, "nothing changed on disk");
}

#[test]
fn a_broken_edit_keeps_the_last_good_version_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("svc.yaml");
    fs::write(&file, SVC).expect("write");
    let mut cache = ManifestCache::default();
    let (state, _) = cache.scan(dir.path());
    assert_eq!(state.services.len(), 1);

    // An unknown field: strict validation names it, and the previous version keeps serving.
    fs::write(&file, SVC.replace("port: 80", "port: 80\n    portz: 81")).expect("write");
    let (state, changed) = cache.scan(dir.path());
    assert!(changed);
    assert_eq!(state.services.len(), 1, "last good version kept");
    assert_eq!(state.invalid.len(), 1);
    let err = state.invalid[0].to_string();
    assert!(
        err.contains("svc.yaml (document 1)")
            && err.contains("spec.ports[0].portz")
            && err.contains("unknown field"),
        "{err}"
    );

    // Deleting the file removes the object.
    fs::remove_file(&file).expect("rm");
    let (state, changed) = cache.scan(dir.path());
    assert!(changed);
    assert!(state.services.is_empty());
    assert!(state.invalid.is_empty());
}

#[test]
fn a_new_broken_file_is_reported_and_others_keep_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("good.yaml"), SVC).expect("write");
    fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: eighty}]}\n",
    )
    .expect("write");
    let (state, _) = ManifestCache::default().scan(dir.path());
    assert_eq!(state.services.len(), 1);
    let err = state.invalid[0].to_string();
    assert!(
        err.contains("bad.yaml") && err.contains("spec.ports[0].port"),
        "{err}"
    );
}

#[tokio::test]
async fn run_sends_state_and_follows_edits() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("svc.yaml"), SVC).expect("write");
    let (tx, mut rx) = crate::state_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(ManifestsConfig::new(dir.path()), tx, shutdown.clone()));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("initial state")
        .expect("open")
        .clone();
    assert_eq!(first.as_ref().map(|s| s.services.len()), Some(1));
    fs::write(dir.path().join("two.yaml"), SVC.replace("web", "api")).expect("write");
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.as_ref().is_some_and(|s| s.services.len() == 2)),
    )
    .await
    .expect("edit seen within 5 s");
    drop(next);
    shutdown.cancel();
    task.await.expect("join").expect("clean exit");
}

#[tokio::test]
async fn a_directory_that_keeps_changing_does_not_postpone_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("svc.yaml"), SVC).expect("write");
    let (tx, mut rx) = crate::state_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(ManifestsConfig::new(dir.path()), tx, shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("initial")
        .expect("open");

    // A log file inside the directory is written every 5 ms, more often than the debounce.
    let noisy = dir.path().join("agent.log");
    let stop_noise = CancellationToken::new();
    let noise = {
        let stop = stop_noise.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let _ = tokio::fs::write(&noisy, n.to_string()).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    fs::write(dir.path().join("two.yaml"), SVC.replace("web", "api")).expect("write");
    tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.as_ref().is_some_and(|s| s.services.len() == 2)),
    )
    .await
    .expect("edit seen")
    .expect("open");
    let took = started.elapsed();
    stop_noise.cancel();
    noise.await.expect("noise");
    assert!(
        took < Duration::from_millis(600),
        "reload took {took:?} under constant churn"
    );
    shutdown.cancel();
    task.await.expect("join").expect("clean exit");
}
