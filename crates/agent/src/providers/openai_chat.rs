//! Placeholder: the OpenAiChat adapter is being written.

use crate::model::{DeltaSink, Model, ModelError, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;

#[derive(Debug)]
pub struct OpenAiChat {
    settings: ProviderSettings,
    #[allow(dead_code)]
    http: reqwest::Client,
}

impl OpenAiChat {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }
}

#[async_trait::async_trait]
impl Model for OpenAiChat {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, _request: &ModelRequest, _sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        Err(ModelError::protocol(self.settings.name, "not written yet"))
    }
}
