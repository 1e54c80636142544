//! The pipeline's model calls: through the answer cache, recorded in the run, with the
//! client's errors turned into the run's error kinds (`llm_unavailable`, `llm_context`,
//! `llm_answer`).

use super::{Driver, Event, ModelCall, PipelineOptions, Stage};
use crate::llm::fit::Fit;
use crate::llm::server::ServerMemory;
use crate::llm::{AnswerCache, ChatRequest, Completion, LlmClient, LlmConfig, LlmError, Message};
use crate::outcome::{ErrorKind, OutcomeError};

/// The model, its cache, and whether cached answers may be used.
pub(super) struct ModelStage {
    client: LlmClient,
    cache: AnswerCache,
    read_cache: bool,
}

/// The run's error for a failed model call: a request too long for the context and an
/// unusable answer are not an unavailable server.
pub(super) fn model_error(error: LlmError) -> OutcomeError {
    let hint = error.hint();
    let kind = match error {
        LlmError::Context { .. } | LlmError::ServerContext { .. } => ErrorKind::LlmContext,
        LlmError::Incomplete { .. } | LlmError::Protocol(_) => ErrorKind::LlmAnswer,
        _ => ErrorKind::LlmUnavailable,
    };
    let error = OutcomeError::new(kind, error.to_string());
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

impl ModelStage {
    pub(super) fn new(config: LlmConfig, options: &PipelineOptions) -> Result<Self, OutcomeError> {
        Ok(Self {
            client: LlmClient::new(config).map_err(model_error)?.with_memory(ServerMemory::new(&options.cache_root)),
            cache: AnswerCache::new(&options.cache_root),
            read_cache: options.use_cache,
        })
    }

    /// How `request` fits the model's context, or why it does not.
    pub(super) async fn fit(&self, request: &ChatRequest) -> Result<Fit, LlmError> {
        self.client.fit(request).await
    }

    /// Asks the model (or the cache) and records the call in the run.
    pub(super) async fn ask(
        &self,
        driver: &mut Driver<'_>,
        stage: Stage,
        request: ChatRequest,
    ) -> Result<Completion, OutcomeError> {
        // A configured model id keys the cache without asking the server, so a cached run
        // needs no server at all.
        let model = match &self.client.config().model {
            Some(model) => model.clone(),
            None => self.client.connect().await.map_err(model_error)?.to_owned(),
        };
        let key = AnswerCache::key(self.client.config(), &model, &request);
        if self.read_cache
            && let Some(hit) = self.cache.get(&key)
        {
            driver.emit(Event::Progress { stage, detail: "cached answer".into() });
            driver.record.model_calls.push(call(stage, request.messages, &hit, true));
            return Ok(hit);
        }
        let progress = driver.options.progress.clone();
        let on_progress = move |chars: usize| {
            progress(&Event::Progress { stage, detail: format!("{chars} characters") });
        };
        let completion = self.client.chat(&request, &on_progress).await.map_err(model_error)?;
        // An answer cut at its limit is not what the model would say again with more room:
        // it is kept in the record, not in the cache.
        if completion.finish_reason.as_deref() != Some("length") {
            self.cache.put(&key, &completion);
        }
        driver.record.timings.model_ms += completion.elapsed_ms;
        driver.record.model_calls.push(call(stage, request.messages, &completion, false));
        Ok(completion)
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
        usage_source: completion.usage_source,
        finish_reason: completion.finish_reason.clone(),
        fit: completion.fit,
        json_mode: completion.json_mode,
    }
}
