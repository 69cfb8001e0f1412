//! What to execute for a container: the image's executable (from the image map) unless
//! `command` names another program, with `$(VAR)` expansion in command and args.
//!
//! Kubernetes semantics: `command` replaces the image's entrypoint and `args` its default
//! arguments. Here the entrypoint *is* the mapped executable, so with no `command` the
//! agent runs `<executable> <args...>`. With a `command`, `command[0]` whose file name is
//! the executable's (`ocr-inference-pod`, `/usr/local/bin/ocr-inference-pod`) runs the
//! mapped executable; any other `command[0]` runs as given on this machine (`sh`,
//! `/bin/sleep`, looked up in PATH).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::env::Env;
use super::expand::expand_with;

/// An executable and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub executable: PathBuf,
    pub args: Vec<String>,
}

/// The program of `container`, whose image maps to `image_executable`; `$(VAR)` references
/// are expanded with `env`.
pub fn container_program(container: &Container, image_executable: &Path, env: &Env) -> Program {
    let command: Vec<String> = container.command.iter().flatten().map(|c| expand_with(c, env)).collect();
    let args = container.args.iter().flatten().map(|a| expand_with(a, env));
    match command.split_first() {
        None => Program { executable: image_executable.to_owned(), args: args.collect() },
        Some((first, rest)) => {
            let names_image =
                Path::new(first).file_name().is_some_and(|name| Some(name) == image_executable.file_name());
            let executable = if names_image { image_executable.to_owned() } else { PathBuf::from(first) };
            Program { executable, args: rest.iter().cloned().chain(args).collect() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let strings = |items: &[&str]| (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect());
        Container { command: strings(command), args: strings(args), ..Default::default() }
    }

    #[test]
    fn no_command_runs_the_image_with_args() {
        let env = vec![("PORT".to_owned(), "50051".to_owned())];
        let program =
            container_program(&container(&[], &["--grpc-port=$(PORT)"]), Path::new("/t/ocr-inference-pod"), &env);
        assert_eq!(
            program,
            Program { executable: "/t/ocr-inference-pod".into(), args: vec!["--grpc-port=50051".into()] }
        );
    }

    #[test]
    fn a_command_naming_the_image_binary_runs_the_mapped_executable() {
        let image = Path::new("/t/ocr-inference-pod");
        let program =
            container_program(&container(&["/usr/local/bin/ocr-inference-pod", "-v"], &["x"]), image, &vec![]);
        assert_eq!(program, Program { executable: image.into(), args: vec!["-v".into(), "x".into()] });
        let program = container_program(&container(&["ocr-inference-pod"], &[]), image, &vec![]);
        assert_eq!(program.executable, image);
    }

    #[test]
    fn other_commands_run_as_given() {
        let env = vec![("MSG".to_owned(), "hi".to_owned())];
        let program = container_program(&container(&["sh", "-c", "echo $(MSG)"], &[]), Path::new("/t/app"), &env);
        assert_eq!(program, Program { executable: "sh".into(), args: vec!["-c".into(), "echo hi".into()] });
    }
}
