use std::fs;

use notify::EventKind;
use notify::event::{AccessKind, AccessMode};
use tokio_util::sync::CancellationToken;

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

/// What a state holds, as text: every object with its origin, and every problem.
fn summary(s: &ClusterState) -> Vec<String> {
    let mut out: Vec<String> = s
        .origins
        .iter()
        .map(|((kind, key), origin)| format!("{kind} {key} from {origin}"))
        .collect();
    out.push(format!(
        "services {:?} ingresses {:?}",
        s.services.keys().collect::<Vec<_>>(),
        s.ingresses.keys().collect::<Vec<_>>()
    ));
    out.extend(s.invalid.iter().map(ToString::to_string));
    out
}

fn ing(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  rules:\n  - host: {host}\n"
    )
}

/// Two caches follow the same directory: one re-reads only the paths an event would name, the
/// other walks everything every time. They must always agree.
struct Twins {
    dir: tempfile::TempDir,
    events: ManifestCache,
    walks: ManifestCache,
}

impl Twins {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Self {
            dir,
            events: ManifestCache::default(),
            walks: ManifestCache::default(),
        };
        t.events.scan(t.dir.path());
        t.walks.scan(t.dir.path());
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// After a change to `paths`: the incremental state equals the walked one.
    fn check(&mut self, paths: &[&str]) -> ClusterState {
        let paths: BTreeSet<PathBuf> = paths.iter().map(|p| self.path(p)).collect();
        let inc = self.events.update(self.dir.path(), &paths);
        let (full, changed) = self.walks.scan(self.dir.path());
        assert_eq!(inc.is_some(), changed, "both see a change, or neither");
        if let Some(inc) = &inc {
            assert_eq!(summary(inc), summary(&full));
        }
        full
    }
}

#[test]
fn reading_only_the_changed_files_gives_the_state_a_full_walk_gives() {
    let mut t = Twins::new();
    fs::write(
        t.path("a.yaml"),
        format!("{SVC}---\n{}", ing("one", "a.example.com")),
    )
    .expect("write");
    fs::write(t.path("b.yaml"), ing("two", "b.example.com")).expect("write");
    let s = t.check(&["a.yaml", "b.yaml"]);
    assert_eq!(s.ingresses.len(), 2);
    assert!(t.events.assembled.is_some(), "no clash: kept for patching");

    // An edit that changes one object and adds another.
    fs::write(
        t.path("b.yaml"),
        format!(
            "{}---\n{}",
            ing("two", "c.example.com"),
            ing("three", "d.example.com")
        ),
    )
    .expect("write");
    assert_eq!(t.check(&["b.yaml"]).ingresses.len(), 3);

    // A rename: the old name is gone, the new one appears.
    fs::rename(t.path("b.yaml"), t.path("c.yaml")).expect("rename");
    let s = t.check(&["b.yaml", "c.yaml"]);
    assert!(
        s.origins
            .values()
            .all(|o| o.file.as_deref() != Some("b.yaml"))
    );

    // A broken edit keeps the last good objects, with the error.
    fs::write(t.path("c.yaml"), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: two}\nspec: {rulez: [x]}\n").expect("write");
    let s = t.check(&["c.yaml"]);
    assert_eq!(s.ingresses.len(), 2, "one, and two's last good version");
    assert_eq!(s.invalid.len(), 1);
    assert!(
        s.invalid[0]
            .message
            .ends_with("the last good version keeps serving")
    );

    // A duplicate: the first in path order wins; removing it hands the name to the other.
    fs::write(t.path("d.yaml"), ing("one", "z.example.com")).expect("write");
    let s = t.check(&["d.yaml"]);
    assert!(s.invalid.iter().any(|e| e.message.contains("duplicate")));
    assert!(t.events.assembled.is_none(), "a clash: assembled anew");
    fs::remove_file(t.path("a.yaml")).expect("rm");
    let s = t.check(&["a.yaml"]);
    assert_eq!(
        s.origins[&("Ingress", portico_model::ObjectKey::new("default", "one"))]
            .file
            .as_deref(),
        Some("d.yaml")
    );

    // A directory moved in is walked.
    let staging = t.path(".staging");
    fs::create_dir(&staging).expect("mkdir");
    fs::write(staging.join("e.yaml"), ing("four", "e.example.com")).expect("write");
    fs::rename(&staging, t.path("sub")).expect("rename");
    assert_eq!(t.check(&[".staging", "sub"]).ingresses.len(), 3);

    // Nothing changed: neither sees a change.
    assert_eq!(t.check(&["c.yaml"]).ingresses.len(), 3);
}

#[test]
fn an_unchanged_object_is_the_same_object_in_the_next_state() {
    let mut t = Twins::new();
    fs::write(t.path("a.yaml"), ing("one", "a.example.com")).expect("write");
    fs::write(t.path("b.yaml"), ing("two", "b.example.com")).expect("write");
    let all = BTreeSet::from([t.path("a.yaml"), t.path("b.yaml")]);
    let first = t.events.update(t.dir.path(), &all).expect("changed");
    fs::write(t.path("b.yaml"), ing("two", "c.example.com")).expect("write");
    let next = t
        .events
        .update(t.dir.path(), &BTreeSet::from([t.path("b.yaml")]))
        .expect("changed");
    let (one, two) = (
        portico_model::ObjectKey::new("default", "one"),
        portico_model::ObjectKey::new("default", "two"),
    );
    // Later stages tell unchanged objects by pointer.
    assert!(Arc::ptr_eq(&first.ingresses[&one], &next.ingresses[&one]));
    assert!(!Arc::ptr_eq(&first.ingresses[&two], &next.ingresses[&two]));
    // An event for a file that did not change gives no state.
    let again = t
        .events
        .update(t.dir.path(), &BTreeSet::from([t.path("a.yaml")]));
    assert!(again.is_none());
}

#[test]
fn watcher_events_are_reduced_to_the_manifest_paths_they_name() {
    use notify::event::{CreateKind, DataChange, ModifyKind, RenameMode};
    let dir = Path::new("/m");
    let ev = |kind, paths: &[&str]| notify::Event {
        kind,
        paths: paths.iter().map(PathBuf::from).collect(),
        attrs: Default::default(),
    };
    // A manifest renamed into place from a hidden temporary file: that file, at once.
    let c = classify(
        dir,
        &ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/m/.a.yaml.tmp", "/m/a.yaml"],
        ),
    );
    assert_eq!(c.paths, BTreeSet::from([PathBuf::from("/m/a.yaml")]));
    assert!(c.settled && !c.full);
    // Writing the temporary file, or a log file, is nothing.
    let c = classify(
        dir,
        &ev(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &["/m/.a.yaml.tmp"],
        ),
    );
    assert!(c.is_empty());
    let c = classify(
        dir,
        &ev(EventKind::Create(CreateKind::File), &["/m/agent.log"]),
    );
    assert!(c.is_empty());
    // Reading is nothing; closing after writing completes a file.
    let c = classify(
        dir,
        &ev(EventKind::Access(AccessKind::Read), &["/m/a.yaml"]),
    );
    assert!(c.is_empty());
    let c = classify(
        dir,
        &ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &["/m/a.yaml"],
        ),
    );
    assert!(c.settled && c.paths.len() == 1);
    // A write in place waits for quiet; a new directory is looked at; no path: walk all.
    let c = classify(
        dir,
        &ev(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &["/m/a.yaml"],
        ),
    );
    assert!(!c.settled && c.paths.len() == 1);
    let c = classify(dir, &ev(EventKind::Create(CreateKind::Folder), &["/m/sub"]));
    assert_eq!(c.paths, BTreeSet::from([PathBuf::from("/m/sub")]));
    let c = classify(dir, &ev(EventKind::Other, &[]));
    assert!(c.full);
}

/// Which call fails, for [`FaultyFs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    ReadDir,
    /// One entry of the directory's listing cannot be read.
    ListEntry,
    Stat,
    Read,
}

/// The real file system, with failures injected per path and call, as a loaded or
/// misconfigured machine produces them (`EMFILE`, `EACCES`, a file vanishing mid-read).
#[derive(Default)]
struct FaultyFs {
    faults: std::sync::Mutex<BTreeMap<(PathBuf, Op), io::ErrorKind>>,
}

impl FaultyFs {
    fn fail(&self, path: &Path, op: Op, kind: io::ErrorKind) {
        self.faults
            .lock()
            .expect("lock")
            .insert((path.to_owned(), op), kind);
    }

    fn heal(&self) {
        self.faults.lock().expect("lock").clear();
    }

    fn check(&self, path: &Path, op: Op) -> io::Result<()> {
        match self
            .faults
            .lock()
            .expect("lock")
            .get(&(path.to_owned(), op))
        {
            Some(kind) => Err(io::Error::new(*kind, format!("injected {kind}"))),
            None => Ok(()),
        }
    }
}

impl ManifestFs for FaultyFs {
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<super::fs::Entry>>> {
        self.check(dir, Op::ReadDir)?;
        let mut entries = RealFs.read_dir(dir)?;
        if let Err(e) = self.check(dir, Op::ListEntry) {
            entries.push(Err(e));
        }
        Ok(entries)
    }

    fn stat(&self, path: &Path) -> io::Result<super::fs::Stat> {
        self.check(path, Op::Stat)?;
        RealFs.stat(path)
    }

    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.check(path, Op::Read)?;
        RealFs.read(path, limit)
    }
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n")
}

/// Every object of a state, as `Kind ns/name`.
fn objects(s: &ClusterState) -> Vec<String> {
    s.origins
        .keys()
        .map(|(kind, key)| format!("{kind} {key}"))
        .collect()
}

#[test]
fn a_failed_read_keeps_every_object_it_could_not_read_and_names_the_path() {
    // Fails before: any read error dropped the file (stat) or the directory (listing), and a
    // failed re-read of a multi-document file kept only its first document.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir(root.join("sub")).expect("mkdir");
    fs::write(root.join("a.yaml"), format!("{SVC}---\n{}", pod("p"))).expect("write");
    fs::write(root.join("sub/b.yaml"), ing("one", "a.example.com")).expect("write");
    fs::write(root.join("c.yaml"), SVC.replace("web", "api")).expect("write");
    let faulty = Arc::new(FaultyFs::default());
    let mut cache = ManifestCache::with_fs(faulty.clone());
    let (state, _) = cache.scan(root);
    let all = objects(&state);
    assert_eq!(all.len(), 4, "{all:?}");

    // a.yaml changed but cannot be read, sub/ cannot be listed, c.yaml cannot be stat'ed.
    fs::write(
        root.join("a.yaml"),
        format!("{SVC}---\n{}---\n{}", pod("p"), pod("q")),
    )
    .expect("write");
    faulty.fail(&root.join("a.yaml"), Op::Read, io::ErrorKind::Other);
    faulty.fail(
        &root.join("sub"),
        Op::ReadDir,
        io::ErrorKind::PermissionDenied,
    );
    faulty.fail(&root.join("c.yaml"), Op::Stat, io::ErrorKind::Other);
    let (state, changed) = cache.scan(root);
    assert!(changed, "the errors are news");
    assert_eq!(objects(&state), all, "nothing deleted by a failed read");
    let errors: Vec<String> = state.invalid.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for path in ["a.yaml", "sub", "c.yaml"] {
        assert!(
            errors.iter().any(|e| e.contains(&format!("in {path}: "))),
            "{path} named: {errors:?}"
        );
    }
    assert!(
        errors
            .iter()
            .all(|e| e.contains("injected") && e.contains("keeps serving")),
        "{errors:?}"
    );
    // The same failure again is no news.
    let (state, changed) = cache.scan(root);
    assert!(!changed);
    assert_eq!(objects(&state), all);

    // The event path alike: a file that cannot be looked at is not a deleted file.
    let events = BTreeSet::from([root.join("c.yaml"), root.join("sub/b.yaml")]);
    faulty.fail(&root.join("sub/b.yaml"), Op::Stat, io::ErrorKind::Other);
    if let Some(state) = cache.update(root, &events) {
        assert_eq!(objects(&state), all);
    }

    // A listing that breaks off mid-way, and the directory itself unreadable.
    faulty.heal();
    faulty.fail(root, Op::ListEntry, io::ErrorKind::Other);
    fs::remove_file(root.join("c.yaml")).expect("rm");
    let (state, _) = cache.scan(root);
    assert_eq!(objects(&state).len(), 5, "a.yaml read again, c.yaml kept");
    faulty.heal();
    faulty.fail(root, Op::ReadDir, io::ErrorKind::Other);
    let (state, _) = cache.scan(root);
    assert_eq!(objects(&state).len(), 5, "everything kept");

    // Healed: the real state, c.yaml really gone.
    faulty.heal();
    let (state, changed) = cache.scan(root);
    assert!(changed);
    assert!(state.invalid.is_empty(), "{:?}", state.invalid);
    assert_eq!(
        objects(&state),
        [
            "Ingress default/one",
            "Pod default/p",
            "Pod default/q",
            "Service default/web"
        ]
    );

    // A file that vanishes mid-read is gone.
    faulty.fail(&root.join("sub/b.yaml"), Op::Read, io::ErrorKind::NotFound);
    fs::write(root.join("sub/b.yaml"), ing("one", "b.example.com")).expect("write");
    let (state, _) = cache.scan(root);
    assert_eq!(objects(&state).len(), 3);
}

#[tokio::test]
async fn a_relative_directory_sees_edits_at_once() {
    // Fails before: the watcher's absolute paths never matched a relative directory, so an
    // edit waited for the periodic re-scan (here a minute, by default 5 s).
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("svc.yaml"), SVC).expect("write");
    // The same directory, relative to the current one (which the test leaves alone).
    let cwd = std::env::current_dir().expect("cwd");
    let mut rel = PathBuf::new();
    for _ in 1..cwd.components().count() {
        rel.push("..");
    }
    rel.push(dir.path().strip_prefix("/").expect("absolute tempdir"));
    assert!(rel.is_relative() && rel.is_dir(), "{}", rel.display());
    let cfg = ManifestsConfig {
        rescan_every: Duration::from_secs(60),
        ..ManifestsConfig::new(&rel)
    };
    let (tx, mut rx) = crate::state_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(cfg, tx, shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("initial state")
        .expect("open");
    fs::write(dir.path().join("two.yaml"), SVC.replace("web", "api")).expect("write");
    tokio::time::timeout(
        Duration::from_secs(2),
        rx.wait_for(|s| s.as_ref().is_some_and(|s| s.services.len() == 2)),
    )
    .await
    .expect("edit seen well within the re-scan period")
    .expect("open");
    shutdown.cancel();
    task.await.expect("join").expect("clean exit");
}

#[test]
fn a_syntax_error_in_one_document_keeps_every_other_and_its_own_last_good() {
    // Fails before: breaking document 2 of pods.yaml dropped the Pod of document 3, and
    // breaking document 1 left one Pod of three.
    let mut t = Twins::new();
    let good: Vec<String> = (1..=3).map(|i| pod(&format!("p{i}"))).collect();
    fs::write(t.path("pods.yaml"), good.join("---\n")).expect("write");
    assert_eq!(t.check(&["pods.yaml"]).pods.len(), 3);
    for broken in 0..3 {
        let mut docs = good.clone();
        docs[broken].push_str("spec: {containers: [}\n");
        fs::write(t.path("pods.yaml"), docs.join("---\n")).expect("write");
        let s = t.check(&["pods.yaml"]);
        assert_eq!(
            s.pods.len(),
            3,
            "document {} broken: {:?}",
            broken + 1,
            summary(&s)
        );
        assert_eq!(s.invalid.len(), 1);
        let err = s.invalid[0].to_string();
        let want = format!(
            "Pod default/p{} in pods.yaml (document {}): invalid YAML",
            broken + 1,
            broken + 1
        );
        assert!(err.starts_with(&want), "{err}");
        assert!(
            err.ends_with("the last good version keeps serving"),
            "{err}"
        );
    }
    // A document inserted before a broken one: the broken one keeps its own object (by kind
    // and name), not the one that was at its position.
    let docs = [
        pod("p0"),
        good[0].clone(),
        format!("{}spec: {{containers: [}}\n", good[1]),
        good[2].clone(),
    ];
    fs::write(t.path("pods.yaml"), docs.join("---\n")).expect("write");
    let s = t.check(&["pods.yaml"]);
    let names: Vec<&str> = s.pods.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3"], "{:?}", summary(&s));
    assert_eq!(
        s.origins[&("Pod", portico_model::ObjectKey::new("default", "p2"))].document,
        Some(3)
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_whole_and_keeps_its_last_good_objects() {
    // Fails before: a file of any size was read whole and its objects taken in.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("svc.yaml");
    fs::write(&file, SVC).expect("write");
    let mut cache = ManifestCache::default();
    assert_eq!(cache.scan(dir.path()).0.services.len(), 1);
    let padding = format!("# {}\n", "x".repeat(1022)).repeat(8 * 1024 + 1);
    fs::write(&file, format!("{}{padding}", SVC.replace("web", "api"))).expect("write");
    let (state, changed) = cache.scan(dir.path());
    assert!(changed);
    let names: Vec<&str> = state.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["web"], "the last good version serves");
    let err = state.invalid[0].to_string();
    assert!(
        err.contains("svc.yaml: file too large") && err.contains("keeps serving"),
        "{err}"
    );
}
