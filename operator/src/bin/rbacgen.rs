//! Prints the operator's ClusterRole as YAML; `make generate` writes it to
//! `operator/generated/clusterrole.yaml`, from which the Helm chart takes it.

fn main() -> anyhow::Result<()> {
    print!("{}", kube_ocr_operator::rbac::cluster_role_yaml()?);
    Ok(())
}
