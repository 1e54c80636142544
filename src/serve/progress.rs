//! The progress of runs started through the API, kept per run so that a browser that
//! subscribes late (`GET /api/runs/{id}/events`) still gets every event from the first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use crate::pipeline::Event;

/// One server-sent event: its name and JSON data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SseEvent {
    /// `started`, `finished`, `progress`, `note` or `done`.
    pub name: &'static str,
    /// Its data.
    pub data: serde_json::Value,
}

impl SseEvent {
    /// The event a pipeline event becomes.
    pub fn from_pipeline(event: &Event) -> Self {
        use serde_json::json;
        match event {
            Event::Started { stage, round } => {
                Self { name: "started", data: json!({"stage": stage.as_str(), "round": round}) }
            }
            Event::Finished { stage, ms, detail, ok } => {
                Self { name: "finished", data: json!({"stage": stage.as_str(), "ms": ms, "ok": ok, "detail": detail}) }
            }
            Event::Progress { stage, detail } => {
                Self { name: "progress", data: json!({"stage": stage.as_str(), "detail": detail}) }
            }
            Event::Note(text) => Self { name: "note", data: json!({"text": text}) },
            Event::Plan(steps) => Self { name: "plan", data: json!({"steps": steps}) },
        }
    }
}

/// One run's events so far, and whether it is done.
#[derive(Debug, Default)]
pub struct Progress {
    events: Mutex<(Vec<SseEvent>, bool)>,
    changed: Notify,
}

impl Progress {
    /// Adds an event.
    pub fn push(&self, event: SseEvent) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).0.push(event);
        self.changed.notify_waiters();
    }

    /// Adds the last event.
    pub fn finish(&self, event: SseEvent) {
        {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events.0.push(event);
            events.1 = true;
        }
        self.changed.notify_waiters();
    }

    /// The events from `from` on, and whether the run is done; waits while there are
    /// none yet and it is not.
    pub async fn since(&self, from: usize) -> (Vec<SseEvent>, bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before reading, so an event pushed in between still wakes us.
            notified.as_mut().enable();
            {
                let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if events.0.len() > from || events.1 {
                    return (events.0.get(from..).unwrap_or_default().to_vec(), events.1);
                }
            }
            notified.await;
        }
    }
}

/// The runs started through this server.
#[derive(Debug, Default, Clone)]
pub struct Registry(Arc<Mutex<HashMap<String, Arc<Progress>>>>);

impl Registry {
    /// A new run's progress.
    pub fn add(&self, id: &str) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), progress.clone());
        progress
    }

    /// A run's progress, if this server started it.
    pub fn get(&self, id: &str) -> Option<Arc<Progress>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }
}
