# Deployment tooling, included by the top-level Makefile. Each tool gets its own virtual
# environment under .sam-venv/ because their pins conflict with the dev environment's
# (the SAM CLI pins boto3; aws-sam-translator pins pydantic; checkov pins both differently).
SAM_VENV    ?= .sam-venv
SAM         := $(SAM_VENV)/sam/bin/sam
CHECKOV     := $(SAM_VENV)/checkov/bin/checkov
SAGEMAKER_PY := $(SAM_VENV)/sagemaker/bin/python
SAM_STAMP   := $(SAM_VENV)/.installed
SAGEMAKER_STAMP := $(SAM_VENV)/sagemaker/.installed
REGION      ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))

.PHONY: sam-venv deploy resolve-images image-mappings teardown

## sam-venv: the SAM CLI (+ cfn-lint, aws-sam-translator), checkov and the pinned SageMaker SDK,
## each in its own venv
sam-venv: $(SAM_STAMP) $(SAGEMAKER_STAMP)

$(SAM_STAMP): deploy/requirements-sam.txt deploy/requirements-scan.txt
	test -x $(SAM_VENV)/sam/bin/python || $(PYTHON) -m venv $(SAM_VENV)/sam
	$(SAM_VENV)/sam/bin/python -m pip install --quiet -r deploy/requirements-sam.txt
	test -x $(SAM_VENV)/checkov/bin/python || $(PYTHON) -m venv $(SAM_VENV)/checkov
	$(SAM_VENV)/checkov/bin/python -m pip install --quiet -r deploy/requirements-scan.txt
	touch $@

# The SageMaker SDK (deploy/requirements-images.txt) holds the per-region image table; it stays
# on this machine (`make resolve-images`, `make image-mappings`), never in a Lambda package.
$(SAGEMAKER_STAMP): deploy/requirements-images.txt
	test -x $(SAGEMAKER_PY) || $(PYTHON) -m venv $(SAM_VENV)/sagemaker
	$(SAGEMAKER_PY) -m pip install --quiet -r deploy/requirements-images.txt
	touch $@

# The template checks need the SAM CLI, checkov and the SDK (tests/unit/template).
test: sam-venv

## deploy: build and deploy the stack (samconfig.toml); GUIDED=1 asks for every parameter
deploy: sam-venv
	$(SAM) build
	$(SAM) deploy $(if $(GUIDED),--guided) $(if $(REGION),--region $(REGION))

## resolve-images: image URIs for REGION=<region> from the SageMaker SDK, as parameter overrides
resolve-images: $(SAGEMAKER_STAMP)
	test -n "$(REGION)" || { echo "usage: make resolve-images REGION=eu-west-1"; exit 2; }
	$(SAGEMAKER_PY) scripts/resolve_images.py --region $(REGION)

## image-mappings: regenerate template.yaml's DefaultImages mapping and region rules (pinned SDK)
image-mappings: $(SAGEMAKER_STAMP)
	$(SAGEMAKER_PY) scripts/generate_image_mappings.py

## teardown: delete the endpoint and models the runs created, then the stack (bucket and table are kept)
teardown: sam-venv
	$(PY) scripts/teardown.py $(if $(REGION),--region $(REGION)) --stack-name $(or $(STACK),cifar100)
	$(SAM) delete $(if $(REGION),--region $(REGION)) --stack-name $(or $(STACK),cifar100)
