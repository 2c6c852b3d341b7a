//! [`CombinedToolSet`]: several [`ToolSet`]s (built-in tools, MCP servers, …) offered to the
//! agent as one, each call routed to the set that lists the tool. Tool names must be unique
//! across the sets; a duplicate is refused when the combination is built.

use std::collections::HashMap;
use std::sync::Arc;

use runtools_agent::toolset::{ToolCall, ToolOutput, ToolSet};
use runtools_protocol::agent::ToolSpec;

use crate::error::CombineError;

/// How much of a set's `Debug` output names it in errors when no name is given.
const LABEL_DEBUG_MAX: usize = 80;

/// Tool sets merged into one.
///
/// The tool lists are read once, at construction: a set whose tools change later is routed by
/// the list it had then.
#[derive(Debug)]
pub struct CombinedToolSet {
    sets: Vec<(String, Arc<dyn ToolSet>)>,
    specs: Vec<ToolSpec>,
    route: HashMap<String, usize>,
}

impl CombinedToolSet {
    /// Merges `sets`; in errors each is named by its position and its `Debug` output.
    pub fn new(sets: Vec<Arc<dyn ToolSet>>) -> Result<Self, CombineError> {
        let named = sets
            .into_iter()
            .enumerate()
            .map(|(i, set)| {
                let mut debug = format!("{set:?}");
                if debug.len() > LABEL_DEBUG_MAX {
                    let mut cut = LABEL_DEBUG_MAX;
                    while !debug.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    debug.truncate(cut);
                    debug.push('…');
                }
                (format!("tool set #{i} ({debug})"), set)
            })
            .collect();
        Self::named(named)
    }

    /// Merges `sets`, each named by its label in errors (e.g. `"built-in tools"`, `"mcp"`).
    pub fn named(sets: Vec<(String, Arc<dyn ToolSet>)>) -> Result<Self, CombineError> {
        let mut specs = Vec::new();
        let mut route: HashMap<String, usize> = HashMap::new();
        for (index, (label, set)) in sets.iter().enumerate() {
            for spec in set.specs() {
                if let Some(&first) = route.get(&spec.name) {
                    let first_label = &sets[first].0;
                    return Err(CombineError::DuplicateTool {
                        name: spec.name,
                        first: first_label.clone(),
                        second: label.clone(),
                    });
                }
                route.insert(spec.name.clone(), index);
                specs.push(spec);
            }
        }
        Ok(Self { sets, specs, route })
    }
}

#[async_trait::async_trait]
impl ToolSet for CombinedToolSet {
    fn specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    async fn call(&self, call: &ToolCall) -> ToolOutput {
        match self.route.get(&call.name) {
            Some(&index) => self.sets[index].1.call(call).await,
            None => ToolOutput::denied(format!("no tool named `{}` is available to this agent", call.name)),
        }
    }
}
