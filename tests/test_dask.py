"""Hyperparameter search scaled out to a Dask cluster through joblib."""

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
pytest.importorskip("sklearn")

import joblib  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from cyprop.sklearn import NetworkClassifier  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


# Short training on purpose; the estimator says it has not converged.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_runs_on_the_cluster_and_matches_local(client):
    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(
        StandardScaler(),
        NetworkClassifier(max_iter=60, batch_size=32, random_state=0),
    )
    grid = {"networkclassifier__hidden_layer_sizes": [(8,), (16,)],
            "networkclassifier__alpha": [1e-4, 1e-2]}
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        remote = GridSearchCV(pipeline, grid, cv=3).fit(X, y)
    local = GridSearchCV(pipeline, grid, cv=3, n_jobs=1).fit(X, y)
    # Every fit ran, on the workers, and gave what a local run gives.
    assert len(remote.cv_results_["params"]) == 4
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"])
    assert remote.best_score_ > 0.85
    ran_on = {task["worker"] for task in tasks.data}
    assert len(tasks.data) >= 12 and ran_on <= set(client.scheduler_info()["workers"])
