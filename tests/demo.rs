//! `airlock demo` as a newcomer runs it: the lines it prints work when pasted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `line` in a shell that has the demo's exports, returning stdout and stderr.
fn paste(exports: &str, line: &str) -> (String, String, Option<i32>) {
    let out = Command::new("bash").arg("-c").arg(format!("{exports}\n{line}")).stdin(Stdio::null()).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn the_lines_the_demo_prints_work_when_pasted() {
    let dir = std::env::temp_dir().join(format!("airlock-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["demo", "--postgres", "0", "--admin", "0", "--ssh", "0", "--http", "0", "--data-dir"])
        .arg(dir.join("data"))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("demo.log")).unwrap())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = demo.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(90)).expect("the demo did not finish starting");
        let done = line.starts_with("Ctrl-C stops");
        printed.push(line);
        if done {
            break;
        }
    }
    let exports: String =
        printed.iter().map(|l| l.trim()).filter(|l| l.starts_with("export ")).map(|l| format!("{l}\n")).collect();
    let command = |starts: &str| printed.iter().map(|l| l.trim()).find(|l| l.starts_with(starts)).unwrap().to_owned();

    let (out, err, code) = paste(&exports, &command("PGPASSWORD=$TOKEN psql"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Ada Lovelace") && !out.contains("ada@example.com"), "{out}");
    let (out, err, code) = paste(&exports, &command("curl -s -H"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Printer on fire") && !out.contains("ada@example.com") && !out.contains("tk_live"), "{out}");
    if exports.contains("AIRLOCK_SSH") {
        let (out, err, code) = paste(&exports, &command("$AIRLOCK_SSH 'uname"));
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("Linux"), "{out}");
        let (out, err, code) = paste(&exports, &command("$AIRLOCK_SSH 'cat"));
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("APP_ENV=staging") && !out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        // Held: the approver's printed lines list it and deny it; the files stay.
        let approvals = printed.iter().map(|l| l.trim()).find(|l| l.ends_with(" approvals")).unwrap().to_owned();
        let script = format!(
            "(timeout 30 $AIRLOCK_SSH 'rm -rf /tmp/airlock-demo-scratch'; echo \"rm exited $?\") &\n\
             sleep 3\n{approvals}\nid=$({approvals} --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"id\"])')\n\
             {deny}\nwait",
            deny = approvals.replace(" approvals", " deny $id --reason 'not in the demo'"),
        );
        let (out, err, _) = paste(&exports, &script);
        assert!(out.contains("rm -rf /tmp/airlock-demo-scratch") && out.contains("rm exited 126"), "{out}\n{err}");
        assert!(std::path::Path::new("/tmp/airlock-demo-scratch/notes.txt").exists());
    }
    Command::new("kill").args(["-INT", &demo.id().to_string()]).status().unwrap();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all("/tmp/airlock-demo-scratch");
}
