//! `dataflare run`, `validate` and `graph`: a workflow file loaded (and
//! checked) by [`Workflow::load`], then run, reported as valid, or drawn.

use std::io::Write as _;

use dataflare::workflow::Workflow;

use crate::args::{Reporting, WorkflowFile};
use crate::execute::{NotRun, execute, invalid};

/// Loads the workflow and runs its graph until it ends or a signal cancels
/// it; returns the exit status (78 for an invalid file).
pub(crate) async fn run(file: WorkflowFile, reporting: Reporting) -> i32 {
    let prepare = async {
        let workflow = Workflow::load(&file.path, &file.options)
            .await
            .map_err(NotRun::Invalid)?;
        workflow.into_graph().map_err(NotRun::Failed)
    };
    execute(reporting, false, prepare).await
}

/// Loads the workflow: prints `FILE: ok (NAME)` on stdout and returns 0, or
/// prints every problem on stderr and returns 78. Nothing is written.
pub(crate) async fn validate(file: WorkflowFile) -> i32 {
    match Workflow::load(&file.path, &file.options).await {
        Ok(workflow) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}: ok ({})", file.path.display(), workflow.name());
            0
        }
        Err(diagnostics) => invalid(&diagnostics),
    }
}

/// Loads the workflow and prints its DAG in `format` on stdout; returns 0, or
/// 78 for an invalid file (its problems on stderr).
pub(crate) async fn graph(file: WorkflowFile, format: dataflare::graph::Format) -> i32 {
    match Workflow::load(&file.path, &file.options).await {
        Ok(workflow) => {
            let text = workflow.describe(format);
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = stdout.write_all(b"\n");
            }
            0
        }
        Err(diagnostics) => invalid(&diagnostics),
    }
}
