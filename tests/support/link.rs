//! A TCP link that fails on cue, put between Airlock and a real upstream: it accepts and
//! never answers, or relays faithfully until told to cut a connection mid-stream with a
//! reset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A listening link; see the module docs.
pub struct Link {
    /// Where Airlock should connect.
    pub addr: SocketAddr,
    cut_next: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    /// Connections a silent link holds open without reading.
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// While set, connections are closed as soon as they are accepted.
    down: Arc<AtomicBool>,
    /// Relayed connections, to break when the link goes down.
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Link {
    /// Accepts every connection and never sends a byte.
    pub fn silent() -> Link {
        Self::start(None)
    }

    /// Relays every connection to `upstream`.
    pub fn to(upstream: SocketAddr) -> Link {
        Self::start(Some(upstream))
    }

    fn start(upstream: Option<SocketAddr>) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let link = Link {
            addr: listener.local_addr().unwrap(),
            cut_next: Arc::default(),
            cuts: Arc::default(),
            accepted: Arc::default(),
            held: Arc::default(),
            down: Arc::default(),
            live: Arc::default(),
        };
        let (cut_next, cuts, accepted, held) =
            (link.cut_next.clone(), link.cuts.clone(), link.accepted.clone(), link.held.clone());
        let (down, live) = (link.down.clone(), link.live.clone());
        std::thread::spawn(move || {
            for agent in listener.incoming() {
                let Ok(agent) = agent else { break };
                accepted.fetch_add(1, Ordering::SeqCst);
                if down.load(Ordering::SeqCst) {
                    continue;
                }
                live.lock().unwrap().extend(agent.try_clone());
                let Some(upstream) = upstream else {
                    held.lock().unwrap().push(agent);
                    continue;
                };
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let (agent2, server2) = (agent.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(agent2, server2, None));
                let (cut_next, cuts) = (cut_next.clone(), cuts.clone());
                std::thread::spawn(move || pump(server, agent, Some((cut_next, cuts))));
            }
        });
        link
    }

    /// The next bytes the upstream sends on any connection are cut in half: the first
    /// half is delivered, then both sides are reset.
    pub fn cut_next_read(&self) {
        self.cut_next.store(true, Ordering::SeqCst);
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Takes the link down (every relayed connection is broken, new ones are closed at
    /// once) or brings it back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for s in self.live.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// How many connections were accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`; with `cut`, resets both mid-stream once it is armed.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: Option<(Arc<AtomicBool>, Arc<AtomicUsize>)>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((armed, cuts)) = &cut
            && armed.swap(false, Ordering::SeqCst)
        {
            let _ = to.write_all(&buf[..n.div_ceil(2)]);
            for s in [&from, &to] {
                let _ = socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            cuts.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
