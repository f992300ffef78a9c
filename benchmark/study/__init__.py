"""The human ranking study: bundle, survey, responses, analysis."""
