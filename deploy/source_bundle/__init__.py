"""CloudFormation custom resource that publishes training/ and model_handler/ to S3 on deploy."""
