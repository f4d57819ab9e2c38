"""The lesson's own numpy loop (as in bench_lesson.py), for W1 only."""

from __future__ import annotations

import numpy as np

from peers import Unsupported


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_derivative(x):
    return x * (1 - x)


class Run:
    def __init__(self, workload):
        self.workload = workload
        self.X = workload.X.copy()
        self.y = workload.Y.copy()
        self.W1, self.W2 = (W.copy() for W in workload.weights)
        self.b1, self.b2 = (b.reshape(1, -1).copy() for b in workload.biases)

    def train(self):
        # The lesson's loop as the lesson writes it, without its prints.
        X, y = self.X, self.y
        W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
        learning_rate = self.workload.learning_rate
        for _ in range(self.workload.epochs):
            hidden_layer_output = sigmoid(np.dot(X, W1) + b1)
            output_layer_output = sigmoid(np.dot(hidden_layer_output, W2) + b2)
            loss = np.mean((output_layer_output - y) ** 2)
            output_layer_gradient = (output_layer_output - y) * sigmoid_derivative(output_layer_output)  # noqa: E501 (the lesson's line)
            hidden_layer_error = output_layer_gradient.dot(W2.T)
            hidden_layer_gradient = hidden_layer_error * sigmoid_derivative(hidden_layer_output)
            W2 -= learning_rate * hidden_layer_output.T.dot(output_layer_gradient)
            b2 -= learning_rate * np.sum(output_layer_gradient, axis=0, keepdims=True)
            W1 -= learning_rate * X.T.dot(hidden_layer_gradient)
            b1 -= learning_rate * np.sum(hidden_layer_gradient, axis=0, keepdims=True)
        self.last_loss = loss

    def predict(self, X):
        hidden = sigmoid(np.dot(X, self.W1) + self.b1)
        return sigmoid(np.dot(hidden, self.W2) + self.b2)


class Contender:
    name = "lesson numpy"

    def version(self):
        return np.__version__

    def variants(self, workload):
        if workload.name != "W1":
            raise Unsupported("the lesson's loop is full-batch XOR only (numpy minibatch "
                              "is its general form)")
        return [("lesson numpy", {})]

    def prepare(self, workload, threads):
        return Run(workload)
