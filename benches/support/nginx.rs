//! An nginx of the benchmarks' own: one worker, in the foreground, killed with the bench.

use std::path::Path;
use std::process::Stdio;

use airlock::demo::{RunAs, is_root, spawn_tied, tied_command};

use crate::support::Running;

/// An nginx with one worker, serving `location /` with `directives`.
pub fn nginx(root: &Path, name: &str, port: u16, directives: &str) -> Running {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let user = if is_root() { "user root;" } else { "" };
    let conf = format!(
        "{user}\ndaemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         keepalive_requests 1000000;\n default_type application/json;\n types {{ application/json json; application/octet-stream bin; text/plain txt; }}\n\
         upstream_placeholder;\n server {{ listen 127.0.0.1:{port}; location / {{ {directives} }} }}\n}}\n",
        d = dir.display()
    )
    .replace("upstream_placeholder;\n", "");
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let bin = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let mut cmd = tied_command(bin, RunAs::Me, "KILL");
    cmd.args(["-c"]).arg(dir.join("nginx.conf")).args(["-p"]).arg(&dir).stderr(Stdio::null());
    let running = Running(spawn_tied(cmd).unwrap());
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return running;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nginx {name} did not start: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
}
