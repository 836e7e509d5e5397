//! Which tasks an analysis still has to do: both `probe` and `destruction` resume per task.

use anyhow::{Result, bail};
use featdrop_data::MultiTaskDataset;

/// The requested tasks (`wanted`; `None`: all of `ds`'s) as (index, name), less those `done`
/// already holds unless `force`. An unknown name is an error listing the dataset's tasks.
pub fn pending_tasks(
    ds: &dyn MultiTaskDataset,
    wanted: Option<&[String]>,
    force: bool,
    done: impl Fn(&str) -> bool,
) -> Result<Vec<(usize, String)>> {
    let tasks = ds.tasks();
    let wanted: Vec<String> = match wanted {
        Some(names) => names.to_vec(),
        None => tasks.names().into_iter().map(String::from).collect(),
    };
    let mut out = Vec::new();
    for name in wanted {
        let Some(i) = tasks.index_of(&name) else {
            bail!("dataset `{}` has no task `{name}`; its tasks: {}", ds.name(), tasks.names().join(", "));
        };
        if force || !done(&name) {
            out.push((i, name));
        } else {
            tracing::info!(task = %name, "already done; --force recomputes");
        }
    }
    Ok(out)
}
