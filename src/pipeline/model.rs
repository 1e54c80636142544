//! The pipeline's model calls: through the answer cache, recorded in the run, with the
//! client's errors turned into the run's `llm_unavailable`.

use serde_json::Value;

use super::{Driver, Event, ModelCall, PipelineOptions, Stage};
use crate::llm::{AnswerCache, ChatRequest, Completion, LlmClient, LlmConfig, LlmError, Message};
use crate::outcome::{ErrorKind, OutcomeError};

/// The model, its cache, and whether cached answers may be used.
pub(super) struct ModelStage {
    client: LlmClient,
    cache: AnswerCache,
    read_cache: bool,
}

fn unavailable(error: LlmError) -> OutcomeError {
    let hint = error.hint();
    let error = OutcomeError::new(ErrorKind::LlmUnavailable, error.to_string());
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

impl ModelStage {
    pub(super) fn new(config: LlmConfig, options: &PipelineOptions) -> Result<Self, OutcomeError> {
        Ok(Self {
            client: LlmClient::new(config).map_err(unavailable)?,
            cache: AnswerCache::new(&options.cache_root),
            read_cache: options.use_cache,
        })
    }

    /// Asks the model (or the cache) and records the call in the run.
    pub(super) async fn ask(
        &self,
        driver: &mut Driver<'_>,
        stage: Stage,
        messages: &[Message],
        schema: Option<(String, Value)>,
    ) -> Result<String, OutcomeError> {
        let request = ChatRequest { messages: messages.to_vec(), schema };
        // A configured model id keys the cache without asking the server, so a cached run
        // needs no server at all.
        let model = match &self.client.config().model {
            Some(model) => model.clone(),
            None => self.client.connect().await.map_err(unavailable)?.to_owned(),
        };
        let key = AnswerCache::key(self.client.config(), &model, &request);
        if self.read_cache
            && let Some(hit) = self.cache.get(&key)
        {
            driver.emit(Event::Progress { stage, detail: "cached answer".into() });
            driver.record.model_calls.push(call(stage, request.messages, &hit, true));
            return Ok(hit.content);
        }
        let progress = driver.options.progress.clone();
        let on_progress = move |chars: usize| {
            progress(&Event::Progress { stage, detail: format!("{chars} characters") });
        };
        let completion = self.client.chat(&request, &on_progress).await.map_err(unavailable)?;
        self.cache.put(&key, &completion);
        driver.record.timings.model_ms += completion.elapsed_ms;
        if completion.finish_reason.as_deref() == Some("length") {
            driver.note(format!(
                "The model's {} answer was cut at its token limit; raise max_tokens if the script is incomplete.",
                stage.as_str()
            ));
        }
        driver.record.model_calls.push(call(stage, request.messages, &completion, false));
        Ok(completion.content)
    }
}

/// The record of one answer; a cached one cost no model time.
fn call(stage: Stage, messages: Vec<Message>, completion: &Completion, cached: bool) -> ModelCall {
    ModelCall {
        stage,
        messages,
        answer: completion.content.clone(),
        model: completion.model.clone(),
        cached,
        elapsed_ms: if cached { 0.0 } else { completion.elapsed_ms },
        usage: completion.usage,
    }
}
