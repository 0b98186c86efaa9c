//! A private `redis-server` for tests, examples and benches (feature `testing`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long [`RedisServer::start`] waits for the server to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `redis-server` process of its own: on a free port on 127.0.0.1, with persistence off
/// (`--save '' --appendonly no`) and a temporary directory, killed (and its directory removed)
/// when dropped. It can be killed and started again on the same port, for fault tests.
///
/// Starting it **panics** when `redis-server` cannot be started or does not answer `PING`: a
/// test that needs it fails, it never skips (the project's `scripts/test` installs the Debian
/// package `redis-server` when it is missing).
///
/// ```no_run
/// use battlement_fleet::testing::RedisServer;
///
/// let mut server = RedisServer::start();
/// let url = server.url(); // redis://127.0.0.1:<port>/
/// server.kill();
/// server.restart();
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct RedisServer {
    addr: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port; panics if it cannot (see the type's docs).
    pub fn start() -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "battlement-redis-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        // Several tries: the free port found may be taken by someone else before the server
        // binds it.
        let mut server = RedisServer {
            addr: free_port(),
            dir,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last = e;
                    server.kill();
                    server.addr = free_port();
                }
            }
        }
        panic!("cannot start redis-server: {last}");
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `redis://` URL for the server.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Whether the server process is running (it was not [`kill`](Self::kill)ed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (`SIGKILL`) and waits for it to exit. Its data is gone: persistence is
    /// off.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)); panics if it
    /// cannot.
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        // The port may linger briefly after the kill.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("cannot restart redis-server on {}: {last}", self.addr);
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(redis_server())
            .arg("--port")
            .arg(self.addr.port().to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", redis_server().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("redis-server exited at start: {status}"));
                }
            }
            if ping(self.addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING on {} within {READY_WITHIN:?}",
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` from `PATH`, or Debian's `/usr/bin/redis-server`.
fn redis_server() -> PathBuf {
    let debian = Path::new("/usr/bin/redis-server");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("redis-server")
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port on 127.0.0.1")
}

/// Whether a server on `addr` answers `PING` with `+PONG`.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
