# Deployment tooling, included by the top-level Makefile. Each tool gets its own virtual
# environment under .sam-venv/ because their pins conflict with the dev environment's
# (the SAM CLI pins boto3; aws-sam-translator pins pydantic; checkov pins both differently).
SAM_VENV    ?= .sam-venv
SAM         := $(SAM_VENV)/sam/bin/sam
CHECKOV     := $(SAM_VENV)/checkov/bin/checkov
SAGEMAKER_PY := $(SAM_VENV)/sagemaker/bin/python
SAM_STAMP   := $(SAM_VENV)/.installed
REGION      ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION))

.PHONY: sam-venv deploy resolve-images teardown

## sam-venv: the SAM CLI (+ cfn-lint, aws-sam-translator) and checkov, each in its own venv
sam-venv: $(SAM_STAMP)

$(SAM_STAMP): deploy/requirements-sam.txt deploy/requirements-scan.txt
	test -x $(SAM_VENV)/sam/bin/python || $(PYTHON) -m venv $(SAM_VENV)/sam
	$(SAM_VENV)/sam/bin/python -m pip install --quiet -r deploy/requirements-sam.txt
	test -x $(SAM_VENV)/checkov/bin/python || $(PYTHON) -m venv $(SAM_VENV)/checkov
	$(SAM_VENV)/checkov/bin/python -m pip install --quiet -r deploy/requirements-scan.txt
	touch $@

# The template checks need the SAM CLI and checkov (tests/unit/template).
test: sam-venv

## deploy: build and deploy the stack (samconfig.toml); GUIDED=1 asks for every parameter
deploy: sam-venv
	$(SAM) build
	$(SAM) deploy $(if $(GUIDED),--guided) $(if $(REGION),--region $(REGION))

## resolve-images: image URIs for REGION=<region> from the SageMaker SDK, as parameter overrides
resolve-images:
	test -n "$(REGION)" || { echo "usage: make resolve-images REGION=eu-west-1"; exit 2; }
	test -x $(SAGEMAKER_PY) || { $(PYTHON) -m venv $(SAM_VENV)/sagemaker && \
		$(SAGEMAKER_PY) -m pip install --quiet -r deploy/requirements-images.txt; }
	$(SAGEMAKER_PY) scripts/resolve_images.py --region $(REGION)

## teardown: delete the endpoint and models the runs created, then the stack (bucket and table are kept)
teardown: sam-venv
	$(PY) scripts/teardown.py $(if $(REGION),--region $(REGION)) --stack-name $(or $(STACK),cifar100)
	$(SAM) delete $(if $(REGION),--region $(REGION)) --stack-name $(or $(STACK),cifar100)
