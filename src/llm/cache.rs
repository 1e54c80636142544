//! Model answers cached on disk, keyed by everything that shapes an answer: endpoint,
//! model, messages and sampling parameters. Asking the same thing twice costs no model
//! time, and a run can be replayed exactly.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::client::{ChatRequest, Completion};
use super::config::LlmConfig;

/// A folder of cached answers, one JSON file per key.
#[derive(Debug, Clone)]
pub struct AnswerCache {
    dir: PathBuf,
}

impl AnswerCache {
    /// The cache under `cache_root/llm`.
    pub fn new(cache_root: &Path) -> Self {
        Self { dir: cache_root.join("llm") }
    }

    /// The key of a request to a model: a SHA-256 over a canonical JSON of its inputs. The
    /// API key is not part of it (the answer does not depend on who pays for it).
    pub fn key(config: &LlmConfig, model: &str, request: &ChatRequest) -> String {
        let inputs = serde_json::json!({
            "endpoint": config.base_url,
            "model": model,
            "messages": request.messages,
            "schema": request.schema,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "budget": request.budget,
        });
        let digest = Sha256::digest(serde_json::to_vec(&inputs).expect("cache keys serialise"));
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cached answer for `key`, if there is a readable one.
    pub fn get(&self, key: &str) -> Option<Completion> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores an answer. A cache that cannot be written is not an error: the run goes on
    /// and only the saving is lost.
    pub fn put(&self, key: &str, completion: &Completion) {
        let bytes = serde_json::to_vec_pretty(completion).expect("completions serialise");
        if let Err(e) =
            std::fs::create_dir_all(&self.dir).and_then(|()| crate::cache::write_atomically(&self.path(key), &bytes))
        {
            tracing::warn!("could not cache a model answer in {}: {e}", self.dir.display());
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::llm::wire::Usage;

    #[test]
    fn answers_round_trip_and_keys_depend_on_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AnswerCache::new(dir.path());
        let config = LlmConfig::new("http://localhost:1234/v1");
        let request = ChatRequest::new(vec![Message::user("hi")]);
        let key = AnswerCache::key(&config, "m", &request);
        assert!(cache.get(&key).is_none());
        let completion = Completion {
            content: "hello".into(),
            model: "m".into(),
            usage: Usage { prompt_tokens: 1, completion_tokens: 2 },
            finish_reason: Some("stop".into()),
            elapsed_ms: 3.0,
            attempts: 1,
            fit: None,
            json_mode: None,
            usage_source: crate::llm::wire::UsageSource::Reported,
        };
        cache.put(&key, &completion);
        assert_eq!(cache.get(&key), Some(completion));

        let other_message = ChatRequest::new(vec![Message::user("hi!")]);
        let mut warmer = config.clone();
        warmer.temperature = 0.7;
        let keys = [
            AnswerCache::key(&config, "other", &request),
            AnswerCache::key(&config, "m", &other_message),
            AnswerCache::key(&warmer, "m", &request),
            AnswerCache::key(&LlmConfig::new("http://elsewhere/v1"), "m", &request),
        ];
        assert!(keys.iter().all(|k| *k != key && k.len() == 64), "{keys:?}");
    }
}
