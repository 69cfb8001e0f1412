// The Gateway API release whose CRDs the project uses: tools/fetch-gateway-api-crds.sh
// caches its standard-channel CRDs for the e2e tests (GRPCRoute), and tools/chart/test.sh
// validates the samples against them. Dependencies only: no code lives here.
module kube-ocr/tools/gateway-api

go 1.26.0

require sigs.k8s.io/gateway-api v1.6.3 // indirect
