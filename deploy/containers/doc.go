// Package containers holds the tests of the container artefacts at the top of the repository:
// the Dockerfile (its build recipe is run and the binary checked to be static and version
// stamped) and docker-compose.yml (its services, mounts, connection strings and Prometheus
// target fit together). No Docker engine is needed.
package containers
