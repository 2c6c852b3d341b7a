//! What tokens cost: a [`PriceTable`] of per-million-token prices by model-id prefix, with the
//! providers' published list prices built in and user overrides on top (a self-hosted model, a
//! negotiated rate, a model newer than this build).

use std::collections::BTreeMap;

use runtools_protocol::agent::Usage;
use serde::{Deserialize, Serialize};

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cache reads; defaults to a tenth of `input`.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Cache writes; defaults to 1.25 × `input`.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl Price {
    pub const fn new(input: f64, output: f64) -> Self {
        Self { input, output, cache_read: None, cache_write: None }
    }

    /// The cost of `usage` in USD.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per_token = |per_million: f64, tokens: u64| per_million * tokens as f64 / 1_000_000.0;
        per_token(self.input, usage.input_tokens)
            + per_token(self.output, usage.output_tokens)
            + per_token(self.cache_read.unwrap_or(self.input / 10.0), usage.cache_read_input_tokens)
            + per_token(self.cache_write.unwrap_or(self.input * 1.25), usage.cache_creation_input_tokens)
    }
}

/// List prices (USD per million input / output tokens) as published by the providers. A model
/// matches the longest prefix; dated ids (`claude-sonnet-4-20250514`) match their family.
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("o4-mini", 1.1, 4.4),
    ("o3-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
    ("o1", 15.0, 60.0),
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash-lite", 0.1, 0.4),
    ("gemini-2.5-flash", 0.3, 2.5),
    ("gemini-2.0-flash", 0.1, 0.4),
];

/// Prices by model-id prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    /// The built-in list prices.
    fn default() -> Self {
        let prices = BUILT_IN
            .iter()
            .map(|&(model, input, output)| {
                // OpenAI and Gemini discount cache reads differently from Anthropic; writes are free.
                let price = if model.starts_with("claude") {
                    Price::new(input, output)
                } else {
                    Price { input, output, cache_read: Some(input / 4.0), cache_write: Some(input) }
                };
                (model.to_owned(), price)
            })
            .collect();
        Self { prices }
    }
}

impl PriceTable {
    /// A table with no prices: every model costs nothing.
    pub fn empty() -> Self {
        Self { prices: BTreeMap::new() }
    }

    /// Sets (or replaces) the price of every model id starting with `prefix`.
    pub fn set(&mut self, prefix: impl Into<String>, price: Price) {
        self.prices.insert(prefix.into(), price);
    }

    /// Applies user overrides on top of this table.
    pub fn merge(&mut self, overrides: &PriceTable) {
        for (prefix, price) in &overrides.prices {
            self.prices.insert(prefix.clone(), *price);
        }
    }

    /// The price of `model` (a `provider/` prefix is ignored): the longest matching prefix.
    pub fn price(&self, model: &str) -> Option<&Price> {
        let model = model.rsplit_once('/').map_or(model, |(_, id)| id);
        self.prices
            .iter()
            .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, price)| price)
    }

    /// The cost of `usage` on `model`, or 0 when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> f64 {
        self.price(model).map_or(0.0, |price| price.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_dated_ids_match_their_family() {
        let table = PriceTable::default();
        assert_eq!(table.price("claude-sonnet-4-20250514").unwrap().input, 3.0);
        assert_eq!(table.price("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(table.price("claude-opus-4-1").unwrap().input, 15.0);
        assert_eq!(table.price("gpt-4.1-mini-2025-04-14").unwrap().output, 1.6);
        assert_eq!(table.price("openai/gpt-4o").unwrap().input, 2.5);
        assert!(table.price("llama-4-scout").is_none());
    }

    #[test]
    fn cost_counts_every_kind_of_token_and_overrides_apply() {
        let mut table = PriceTable::default();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_input_tokens: 1_000_000,
            cache_creation_input_tokens: 0,
            reasoning_tokens: 0,
        };
        let cost = table.cost("claude-sonnet-4-20250514", &usage);
        assert!((cost - (3.0 + 1.5 + 0.3)).abs() < 1e-9, "{cost}");
        let overrides: PriceTable = serde_json::from_str(r#"{"llama-4": {"input": 0.2, "output": 0.6}}"#).unwrap();
        table.merge(&overrides);
        assert!((table.cost("llama-4-scout", &usage) - (0.2 + 0.06 + 0.02)).abs() < 1e-9);
        assert_eq!(PriceTable::empty().cost("gpt-4o", &usage), 0.0);
    }
}
