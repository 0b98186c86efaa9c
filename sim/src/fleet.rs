//! The simulated servers: a pool of `tower::Service`s, each with a number of workers, a bounded
//! FIFO queue and a service-time distribution, and the failure schedule that takes capacity away.

use crate::record::Recorder;
use crate::{Failure, ServiceTime};
use battlement::core::error::BoxError;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a server answers: `Ok` or the kind of the connection error the caller sees.
type Reply = Result<(), io::ErrorKind>;
type Sender = oneshot::Sender<Reply>;

/// Every server of the pool, shared by every client's innermost service.
pub(crate) struct Fleet {
    servers: Vec<RefCell<Server>>,
    recorder: Rc<Recorder>,
}

struct Server {
    concurrency: usize,
    /// Workers that take calls now (`concurrency`, or its fraction during a capacity drop).
    active: usize,
    /// Workers holding a call.
    busy: usize,
    /// The call each worker holds; workers at `active..` hold none.
    slots: Vec<Option<Sender>>,
    /// Bumped when a worker's call is failed by a crash, so its timer, when it fires, knows.
    generations: Vec<u32>,
    queue: VecDeque<Sender>,
    queue_limit: usize,
    service: ServiceTime,
    error_rate: f64,
    rng: fastrand::Rng,
}

impl Server {
    fn service_time(&mut self) -> Duration {
        self.service.draw(&mut self.rng)
    }

    fn free_slot(&self) -> usize {
        self.slots[..self.active]
            .iter()
            .position(Option::is_none)
            .expect("busy < active leaves a free worker below active")
    }
}

impl Fleet {
    pub(crate) fn new(
        servers: usize,
        concurrency: usize,
        queue_limit: usize,
        service: ServiceTime,
        seed: u64,
        recorder: Rc<Recorder>,
    ) -> Rc<Self> {
        let servers = (0..servers)
            .map(|i| {
                RefCell::new(Server {
                    concurrency,
                    active: concurrency,
                    busy: 0,
                    slots: (0..concurrency).map(|_| None).collect(),
                    generations: vec![0; concurrency],
                    queue: VecDeque::new(),
                    queue_limit,
                    service,
                    error_rate: 0.0,
                    rng: fastrand::Rng::with_seed(crate::mix(seed, 0x5e7e_0000 + i as u64)),
                })
            })
            .collect();
        Rc::new(Fleet { servers, recorder })
    }

    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }

    /// A call arrives at server `index`: a free worker takes it, or it waits in the queue, or,
    /// the queue being full, it is refused at once.
    fn submit(self: &Rc<Self>, index: usize) -> PoolFuture {
        self.recorder.attempt();
        let mut server = self.servers[index].borrow_mut();
        let (tx, rx) = oneshot::channel();
        if server.busy < server.active {
            let slot = server.free_slot();
            self.start(index, &mut server, slot, tx);
        } else if server.queue.len() < server.queue_limit {
            server.queue.push_back(tx);
        } else {
            return PoolFuture::Refused;
        }
        PoolFuture::Waiting(rx)
    }

    fn start(self: &Rc<Self>, index: usize, server: &mut Server, slot: usize, tx: Sender) {
        server.slots[slot] = Some(tx);
        server.busy += 1;
        let generation = server.generations[slot];
        let first = server.service_time();
        tokio::task::spawn_local(self.clone().work(index, slot, generation, first));
    }

    /// A worker: serves its call, answers, and takes the next queued call while it is active.
    /// It answers even when the caller has gone (timed out): a server does not learn that.
    async fn work(self: Rc<Self>, index: usize, slot: usize, generation: u32, first: Duration) {
        let mut service = first;
        loop {
            tokio::time::sleep(service).await;
            let mut server = self.servers[index].borrow_mut();
            if server.generations[slot] != generation {
                return; // crashed while serving: the call was failed then
            }
            let tx = server.slots[slot]
                .take()
                .expect("a working slot holds its call");
            let reply = if server.error_rate > 0.0 && server.rng.f64() < server.error_rate {
                Err(io::ErrorKind::ConnectionReset)
            } else {
                Ok(())
            };
            let _gone = tx.send(reply);
            if slot < server.active {
                if let Some(next) = server.queue.pop_front() {
                    server.slots[slot] = Some(next);
                    service = server.service_time();
                    continue;
                }
            }
            server.busy -= 1;
            return;
        }
    }

    /// Sets every server's active workers to `fraction` of its concurrency (rounded, at least
    /// one). Going down with `crash`, the calls on the workers lost fail at once (connection
    /// reset); without it they finish first. Going up, the new workers take queued calls.
    fn set_capacity(self: &Rc<Self>, fraction: f64, crash: bool, error_rate: f64) {
        for index in 0..self.servers.len() {
            let mut server = self.servers[index].borrow_mut();
            let server = &mut *server;
            server.error_rate = error_rate;
            let active = ((server.concurrency as f64 * fraction).round() as usize)
                .clamp(1, server.concurrency);
            if active < server.active && crash {
                for slot in active..server.concurrency {
                    if let Some(tx) = server.slots[slot].take() {
                        server.generations[slot] = server.generations[slot].wrapping_add(1);
                        server.busy -= 1;
                        let _gone = tx.send(Err(io::ErrorKind::ConnectionReset));
                    }
                }
            }
            server.active = active;
            while server.busy < server.active {
                let Some(next) = server.queue.pop_front() else {
                    break;
                };
                let slot = server.free_slot();
                self.start(index, server, slot, next);
            }
        }
    }

    /// Runs the failure schedule: capacity drops at `start` for `length`, then returns.
    pub(crate) async fn schedule(self: Rc<Self>, failure: Failure) {
        let origin = self.recorder.origin();
        tokio::time::sleep_until(origin + failure.start).await;
        self.set_capacity(failure.fraction, failure.crash, failure.error_rate);
        tokio::time::sleep_until(origin + failure.start + failure.length).await;
        self.set_capacity(1.0, false, 0.0);
    }
}

/// A client's innermost service: sends each call to a server picked uniformly at random (a
/// client-side load balancer), with the client's own seeded random numbers.
#[derive(Clone)]
pub(crate) struct Pool {
    fleet: Rc<Fleet>,
    rng: Rc<RefCell<fastrand::Rng>>,
}

impl Pool {
    pub(crate) fn new(fleet: Rc<Fleet>, seed: u64) -> Self {
        Pool {
            fleet,
            rng: Rc::new(RefCell::new(fastrand::Rng::with_seed(seed))),
        }
    }
}

impl tower::Service<()> for Pool {
    type Response = ();
    type Error = BoxError;
    type Future = PoolFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: ()) -> PoolFuture {
        let index = self.rng.borrow_mut().usize(..self.fleet.len());
        self.fleet.submit(index)
    }
}

/// The answer to one attempt.
pub(crate) enum PoolFuture {
    /// The server's queue was full: refused at once.
    Refused,
    /// Queued or being served.
    Waiting(oneshot::Receiver<Reply>),
}

impl Future for PoolFuture {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            PoolFuture::Refused => Poll::Ready(Err(Box::new(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            )))),
            PoolFuture::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Ok(()))) => Poll::Ready(Ok(())),
                Poll::Ready(Ok(Err(kind))) => Poll::Ready(Err(Box::new(io::Error::from(kind)))),
                Poll::Ready(Err(_)) => Poll::Ready(Err(Box::new(io::Error::from(
                    io::ErrorKind::ConnectionReset,
                )))),
            },
        }
    }
}
