#!/usr/bin/python3
"""Bag-of-words baselines for Brown genre classification (bench/genre_bench.sh): multinomial
naive Bayes on word counts and logistic regression on TF-IDF of words and word bigrams, both
from scikit-learn (Debian's python3-sklearn), trained on TRAIN and scored on TEST
("label<TAB>text" lines). Prints one line per model: name, accuracy, macro F1.

Usage: bench/genre_baseline.py TRAIN TEST
"""
import sys

from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.naive_bayes import MultinomialNB


def read(path):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            label, _, text = line.rstrip("\n").partition("\t")
            labels.append(label)
            texts.append(text)
    return labels, texts


def main():
    y_train, x_train = read(sys.argv[1])
    y_test, x_test = read(sys.argv[2])
    models = [
        ("naive_bayes", CountVectorizer(lowercase=True), MultinomialNB(alpha=0.1)),
        ("logistic_regression", TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df=2),
         LogisticRegression(C=10.0, max_iter=2000)),
    ]
    for name, vec, clf in models:
        clf.fit(vec.fit_transform(x_train), y_train)
        pred = clf.predict(vec.transform(x_test))
        print(f"{name}\t{accuracy_score(y_test, pred):.4f}\t{f1_score(y_test, pred, average='macro', zero_division=0):.4f}")


if __name__ == "__main__":
    main()
