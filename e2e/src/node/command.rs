//! Short host commands (ip, nsenter, ctr, buildah) whose failure should read as an error
//! naming the command and its stderr.

use std::process::Command;

use super::NodeError;

/// Runs a short command, failing with its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String, NodeError> {
    // An inline script stands as `<script>`: the error should name the command, not repeat it.
    let args = command
        .get_args()
        .map(|arg| arg.to_string_lossy())
        .map(|arg| if arg.contains('\n') { "<script>".into() } else { arg })
        .collect::<Vec<_>>();
    let what = format!("{} {}", command.get_program().to_string_lossy(), args.join(" "));
    let output = command.output().map_err(|e| NodeError::command(what.clone(), e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(NodeError::command(what, format!("{}: {stderr}", output.status)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
