"""Our own Rasa pipeline component; the Rasa processes import it from this checkout (PYTHONPATH).

Runs in the Rasa environment (Python 3.10, Rasa 3.6), never in the bot's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.message import Message
from scipy.sparse import csr_matrix, hstack, vstack


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LeanLogisticRegressionClassifier(LogisticRegressionClassifier):
    """Rasa's logistic regression, without two costs of predicting one message at a time.

    Measured with py-spy inside the server (docs/nlu-decisions.md): scipy multiplies a sparse
    row by the transposed weights only after copying them whole when they are stored row by
    row (20 intents x 212,000 features: half of every parse); and Rasa's classifier joins
    every featurizer's per-token matrices, then reads only the sentence features. Same
    weights, same features, same predictions.
    """

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LeanLogisticRegressionClassifier:
        """Load the trained classifier with its weights stored column by column."""
        component: LeanLogisticRegressionClassifier = super().load(
            config, model_storage, resource, execution_context, **kwargs)
        if hasattr(component.clf, "coef_"):
            # coef_.T is then contiguous: X @ coef_.T reads it in place.
            component.clf.coef_ = np.asfortranarray(component.clf.coef_)
        return component

    def _create_X(self, messages: list[Message]) -> csr_matrix:
        """Return the sentence features of the messages, one row each, as Rasa's classifier."""
        rows = []
        for message in messages:
            sparse = [f.features for f in message.features
                      if f.attribute == TEXT and f.is_sparse() and f.type == FEATURE_TYPE_SENTENCE]
            dense = message.get_dense_features(attribute=TEXT)[1]
            rows.append(hstack([
                hstack(sparse) if sparse else csr_matrix([]),
                csr_matrix(dense.features if dense else []),
            ]))
        return vstack(rows)
