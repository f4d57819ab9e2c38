"""The lesson's program as the lesson gives it, printing removed; used as an oracle."""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_derivative(x):
    return x * (1 - x)


def run(iterations=10000, learning_rate=0.1):
    """Return the loss at every iteration and the last forward pass's outputs."""
    state = np.random.get_state()
    np.random.seed(1)
    W1 = np.random.rand(3, 4)
    b1 = np.random.rand(1, 4)
    W2 = np.random.rand(4, 1)
    b2 = np.random.rand(1, 1)
    np.random.set_state(state)

    X = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
    y = np.array([[0], [1], [1], [0]])
    losses = []
    for _ in range(iterations):
        hidden_layer_output = sigmoid(np.dot(X, W1) + b1)
        output_layer_output = sigmoid(np.dot(hidden_layer_output, W2) + b2)
        losses.append(np.mean((output_layer_output - y) ** 2))

        output_layer_gradient = (output_layer_output - y) * sigmoid_derivative(output_layer_output)
        hidden_layer_error = output_layer_gradient.dot(W2.T)
        hidden_layer_gradient = hidden_layer_error * sigmoid_derivative(hidden_layer_output)

        W2 -= learning_rate * hidden_layer_output.T.dot(output_layer_gradient)
        b2 -= learning_rate * np.sum(output_layer_gradient, axis=0, keepdims=True)
        W1 -= learning_rate * X.T.dot(hidden_layer_gradient)
        b1 -= learning_rate * np.sum(hidden_layer_gradient, axis=0, keepdims=True)
    return np.array(losses), output_layer_output, (W1, b1, W2, b2)
