//! The board: the one copy of the session's state that the API serves, written
//! by the engine after each event and read by the HTTP server. Every change gets
//! a sequence number and goes into a bounded log of recent events, so a client
//! can resume a stream after a disconnect without loss or duplicates; one that
//! fell too far behind gets a fresh snapshot instead ("resync").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::view::{Event, ResourceView, SessionView, Snapshot};

/// Recent events kept for resuming streams.
const EVENT_LOG: usize = 10_000;
/// Events a live stream may fall behind before it is resynced.
const STREAM_BUFFER: usize = 1_024;

/// The state the API serves.
pub struct Board {
    inner: Mutex<Inner>,
    stream: broadcast::Sender<Arc<Event>>,
}

struct Inner {
    seq: u64,
    session: SessionView,
    order: Vec<String>,
    resources: HashMap<String, ResourceView>,
    log: VecDeque<Arc<Event>>,
    /// Nothing is queued, running or starting, and no reload is in progress.
    quiet: bool,
}

/// Where a stream starts.
pub enum Resume {
    /// The events after the client's sequence number.
    Events(Vec<Arc<Event>>),
    /// Too old (or no number): start from this snapshot.
    Snapshot(Snapshot),
}

impl Board {
    pub fn new(session: SessionView) -> Arc<Board> {
        Arc::new(Board {
            inner: Mutex::new(Inner {
                seq: 0,
                session,
                order: Vec::new(),
                resources: HashMap::new(),
                log: VecDeque::new(),
                quiet: false,
            }),
            stream: broadcast::channel(STREAM_BUFFER).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &mut Inner, event: impl FnOnce(u64) -> Event) {
        inner.seq += 1;
        let event = Arc::new(event(inner.seq));
        if inner.log.len() == EVENT_LOG {
            inner.log.pop_front();
        }
        inner.log.push_back(event.clone());
        let _ = self.stream.send(event);
    }

    /// The resources in run order (after a reload); views of resources no
    /// longer listed are removed.
    pub fn set_order(&self, names: Vec<String>) {
        let mut inner = self.lock();
        let gone: Vec<String> = inner
            .resources
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in gone {
            inner.resources.remove(&name);
            self.publish(&mut inner, |seq| Event::Removed { seq, name });
        }
        inner.order = names;
    }

    /// A resource's current view; published only when it differs.
    pub fn set_resource(&self, view: ResourceView) {
        let mut inner = self.lock();
        if inner.resources.get(&view.name) == Some(&view) {
            return;
        }
        inner.resources.insert(view.name.clone(), view.clone());
        self.publish(&mut inner, |seq| Event::Resource {
            seq,
            resource: Box::new(view),
        });
    }

    /// Changes the session view.
    pub fn update_session(&self, change: impl FnOnce(&mut SessionView)) {
        let mut inner = self.lock();
        let mut session = inner.session.clone();
        change(&mut session);
        if session == inner.session {
            return;
        }
        inner.session = session.clone();
        self.publish(&mut inner, |seq| Event::Session { seq, session });
    }

    pub fn set_quiet(&self, quiet: bool) {
        self.lock().quiet = quiet;
    }

    /// Whether nothing is queued, running or starting.
    pub fn is_quiet(&self) -> bool {
        self.lock().quiet
    }

    /// Everything, now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Self::snapshot_of(&inner)
    }

    fn snapshot_of(inner: &Inner) -> Snapshot {
        Snapshot {
            seq: inner.seq,
            session: inner.session.clone(),
            resources: inner
                .order
                .iter()
                .filter_map(|n| inner.resources.get(n).cloned())
                .collect(),
        }
    }

    /// One resource's view.
    pub fn resource(&self, name: &str) -> Option<ResourceView> {
        self.lock().resources.get(name).cloned()
    }

    /// Subscribes to changes after `since`: the events to send first (or a
    /// snapshot when they are no longer kept), and the live stream, which only
    /// carries events after those.
    pub fn follow(&self, since: Option<u64>) -> (Resume, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let stream = self.stream.subscribe();
        let oldest = inner.log.front().map_or(inner.seq + 1, |e| e.seq());
        let resume = match since {
            Some(since) if since <= inner.seq && since + 1 >= oldest => Resume::Events(
                inner
                    .log
                    .iter()
                    .filter(|e| e.seq() > since)
                    .cloned()
                    .collect(),
            ),
            _ => Resume::Snapshot(Self::snapshot_of(&inner)),
        };
        (resume, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionView {
        SessionView {
            loopfiles: vec!["Loopfile".into()],
            args: vec![],
            pid: 1,
            start_ms: 0,
            loopfile_error: None,
            buttons: Vec::new(),
        }
    }

    fn view(name: &str, phase: &str) -> ResourceView {
        ResourceView {
            name: name.into(),
            kind: "local".into(),
            phase: phase.into(),
            reason: None,
            queued: false,
            enabled: true,
            trigger_mode: "auto".into(),
            auto_init: true,
            last_run: None,
            last_skip: None,
            restarts: 0,
            last_error: None,
            links: vec![],
            port_forwards: vec![],
            labels: vec![],
            resource_deps: vec![],
            data_deps: vec![],
            defined_at: "Loopfile:1:1".into(),
            buttons: Vec::new(),
        }
    }

    #[test]
    fn unchanged_views_publish_nothing_and_streams_resume_without_gaps() {
        let board = Board::new(session());
        board.set_order(vec!["a".into(), "b".into()]);
        board.set_resource(view("a", "idle"));
        board.set_resource(view("a", "idle"));
        board.set_resource(view("b", "idle"));
        assert_eq!(board.snapshot().seq, 2);
        let (resume, mut live) = board.follow(Some(1));
        let Resume::Events(events) = resume else {
            panic!("events expected")
        };
        assert_eq!(events.iter().map(|e| e.seq()).collect::<Vec<_>>(), [2]);
        board.set_resource(view("a", "ready"));
        assert_eq!(live.try_recv().unwrap().seq(), 3);
        assert!(matches!(board.follow(None).0, Resume::Snapshot(s) if s.resources.len() == 2));
        assert!(matches!(board.follow(Some(99)).0, Resume::Snapshot(_)));
        board.set_order(vec!["b".into()]);
        assert!(matches!(&*live.try_recv().unwrap(), Event::Removed { name, .. } if name == "a"));
    }

    #[test]
    fn a_stream_too_far_behind_gets_a_snapshot() {
        let board = Board::new(session());
        board.set_order(vec!["a".into()]);
        for i in 0..(EVENT_LOG + 10) {
            board.set_resource(view("a", &format!("p{i}")));
        }
        assert!(matches!(board.follow(Some(1)).0, Resume::Snapshot(_)));
        let seq = board.snapshot().seq;
        assert!(matches!(board.follow(Some(seq - 5)).0, Resume::Events(e) if e.len() == 5));
    }
}
