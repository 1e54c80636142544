//! Fitting requests into a model's context: a rough token count of a conversation, each
//! stage's answer budget, and the check that prompt and answer fit together before anything
//! is sent. The count is characters over a ratio that starts cautious and is learnt from the
//! prompt tokens the server reports, so it follows the model's own tokenizer after one call.

use serde::{Deserialize, Serialize};

use super::wire::Message;

/// Characters per token assumed before the server has reported any count: below what BPE
/// tokenizers give on English, code and JSON (3.5-4), so that a first guess errs long.
pub const CAUTIOUS_CHARS_PER_TOKEN: f64 = 3.0;

/// Tokens each message costs beyond its text (role markers, separators in chat templates).
pub const PER_MESSAGE_TOKENS: u32 = 8;

/// Tokens kept free between prompt and answer for what the count cannot see (the chat
/// template's own text, a tokenizer that splits worse than measured).
pub const MARGIN_TOKENS: u32 = 64;

/// What one stage may be answered with, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerBudget {
    /// What the stage asks for when the context has room.
    pub want: u32,
    /// Less than this and the answer cannot be whole: the request does not fit.
    pub least: u32,
}

impl AnswerBudget {
    /// A plan: one JSON object, whose schema bounds it to fit this (checked by a test in `task`).
    pub const PLAN: Self = Self { want: 2048, least: 320 };
    /// A script, first or repaired.
    pub const SCRIPT: Self = Self { want: 2048, least: 768 };
}

/// How prompt and answer share the context, for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fit {
    /// The prompt, as counted.
    pub prompt_tokens: u32,
    /// The answer's limit sent as `max_tokens`.
    pub max_tokens: u32,
    /// The context both must fit.
    pub context: u32,
}

/// Why a request does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TooLong {
    /// Prompt (counted) plus the least answer plus the margin.
    pub needed: u32,
    /// The context.
    pub available: u32,
    /// The prompt, as counted.
    pub prompt_tokens: u32,
}

/// The rough count of a conversation's tokens at `chars_per_token`.
pub fn count(messages: &[Message], chars_per_token: f64) -> u32 {
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    let text = (chars as f64 / chars_per_token.max(0.5)).ceil();
    (text as u32).saturating_add(PER_MESSAGE_TOKENS.saturating_mul(messages.len() as u32))
}

/// The characters of a conversation, as [`count`] sees them.
pub fn chars(messages: &[Message]) -> usize {
    messages.iter().map(|m| m.content.chars().count()).sum()
}

/// How `messages` and an answer of `budget` share `context`: the answer gets what it
/// wants where there is room, else what is left down to its least.
pub fn fit(messages: &[Message], chars_per_token: f64, budget: AnswerBudget, context: u32) -> Result<Fit, TooLong> {
    let prompt_tokens = count(messages, chars_per_token);
    let room = context.saturating_sub(prompt_tokens).saturating_sub(MARGIN_TOKENS);
    if room < budget.least {
        return Err(TooLong {
            needed: prompt_tokens.saturating_add(budget.least).saturating_add(MARGIN_TOKENS),
            available: context,
            prompt_tokens,
        });
    }
    Ok(Fit { prompt_tokens, max_tokens: room.min(budget.want), context })
}

/// The ratio learnt from one answer: the prompt's characters over the tokens the server
/// counted, less a tenth so that the next count still errs long. `None` when the server
/// counted nothing.
pub fn learnt_ratio(prompt_chars: usize, prompt_tokens: u64) -> Option<f64> {
    (prompt_tokens > 0 && prompt_chars > 0).then(|| prompt_chars as f64 / prompt_tokens as f64 * 0.9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(chars: usize) -> Vec<Message> {
        vec![Message::system("s"), Message::user("x".repeat(chars - 1))]
    }

    #[test]
    fn the_answer_gets_what_is_left_down_to_its_least() {
        let messages = conversation(3000); // 1000 tokens + 16
        let roomy = fit(&messages, 3.0, AnswerBudget::SCRIPT, 8192).unwrap();
        assert_eq!((roomy.prompt_tokens, roomy.max_tokens), (1016, 2048));
        let tight = fit(&messages, 3.0, AnswerBudget::SCRIPT, 2000).unwrap();
        assert_eq!(tight.max_tokens, 2000 - 1016 - MARGIN_TOKENS);
        let too_long = fit(&messages, 3.0, AnswerBudget::SCRIPT, 1500).unwrap_err();
        assert_eq!(too_long, TooLong { needed: 1016 + 768 + MARGIN_TOKENS, available: 1500, prompt_tokens: 1016 });
    }

    #[test]
    fn the_learnt_ratio_errs_long() {
        assert_eq!(learnt_ratio(4000, 1000), Some(3.6));
        assert_eq!(learnt_ratio(4000, 0), None);
    }
}
